// The storefront's script: load the journeys SDK from the API named in config.js (which
// `journeys up` generates), report page views, and track adding to the cart and paying.
(() => {
  const config = window.JOURNEYS_CONFIG;
  const pageName = document.body.dataset.page;

  function problem(text) {
    const box = document.createElement('p');
    box.className = 'problem';
    box.textContent = text;
    document.body.prepend(box);
  }

  function cart() {
    return Number(localStorage.getItem('shop:cart') || 0);
  }

  function start() {
    journeys.init({ apiUrl: config.apiUrl, writeKey: config.writeKey });
    journeys.page(pageName);
    document.getElementById('cart-count')?.replaceChildren(String(cart()));
    const add = document.getElementById('add-to-cart');
    add?.addEventListener('click', () => {
      localStorage.setItem('shop:cart', String(cart() + 1));
      document.getElementById('cart-count').textContent = String(cart());
      document.getElementById('added').hidden = false;
      journeys.track('Product Added', { product_id: 'trail-runner-2', price: 129, currency: 'USD' });
    });
    const form = document.getElementById('payment');
    if (!form) return;
    // Typing card details is activity: it restarts the journey's 10 s of lingering.
    form.addEventListener('input', () => journeys.track('Payment Info Entered'), { once: true });
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      journeys.track('Order Completed', {
        order_id: 'demo-' + Date.now(), total: 129, currency: 'USD'
      });
      localStorage.removeItem('shop:cart');
      form.hidden = true;
      document.getElementById('thanks').hidden = false;
    });
  }

  if (!config) {
    problem('config.js is missing: serve this storefront with `journeys up` (see docs/browser-sdk.md).');
    return;
  }
  const sdk = document.createElement('script');
  sdk.src = config.apiUrl.replace(/\/+$/, '') + '/sdk/journeys.js';
  sdk.onload = start;
  sdk.onerror = () => problem(`Could not load ${sdk.src}: is the journeys API running?`);
  document.head.append(sdk);
})();
