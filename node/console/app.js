// The Compute Bank web console: one module, no framework, nothing fetched from elsewhere.
//
// Every datum comes from the node's JSON API (`spec/http.md`); every write is a command signed
// in this browser with the party's Ed25519 key through WebCrypto, over the bytes
// `POST /v1/commands/canonical` returns, and posted to its typed route, as `cbank` does. The
// private key never leaves the browser. The active view is refreshed every POLL_MS; a form
// shows the API's `{code, message}` when a write or read fails. Charts are inline SVG drawn
// by the small functions at the end.

import { blake3, selfTest as blake3SelfTest } from '/console/blake3.js';

const POLL_MS = 1500;
const ENVELOPE_LIFETIME_NS = 60n * 1000000000n; // as the CLI: a minute from now
const PKCS8_ED25519_PREFIX = '302e020100300506032b657004220420';
const SVG = 'http://www.w3.org/2000/svg';
const KEYS_STORAGE = 'cbank.console.keys';

const state = { view: 'sme', key: null, keys: {}, product: null, report: null, throughput: [], hosts: { scanned: 0, ids: [] } };

// ---------- small helpers ----------

const $ = (selector, root = document) => root.querySelector(selector);
const esc = (text) => String(text ?? '').replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]));
const hex = (bytes) => Array.from(new Uint8Array(bytes), (b) => b.toString(16).padStart(2, '0')).join('');
function unhex(text) {
  const clean = String(text).trim().toLowerCase();
  if (!/^([0-9a-f]{2})*$/.test(clean)) throw new Error('not hex');
  return new Uint8Array(clean.match(/../g)?.map((pair) => parseInt(pair, 16)) ?? []);
}
const b64urlToBytes = (text) => Uint8Array.from(atob(text.replace(/-/g, '+').replace(/_/g, '/')), (c) => c.charCodeAt(0));
const big = (value) => BigInt(value ?? 0);

/** Minor units as a decimal with `places` decimals (fen → yuan). */
function decimal(minor, places) {
  const value = big(minor);
  const negative = value < 0n;
  const digits = (negative ? -value : value).toString().padStart(places + 1, '0');
  const whole = digits.slice(0, digits.length - places).replace(/\B(?=(\d{3})+(?!\d))/g, ',');
  const text = places ? `${whole}.${digits.slice(digits.length - places)}` : whole;
  return negative ? `-${text}` : text;
}
/** A decimal text such as "12.50" to minor units, or an Error naming the field. */
function toMinor(text, places, what) {
  const match = /^\s*(\d+)(?:\.(\d*))?\s*$/.exec(String(text));
  if (!match || (match[2] ?? '').length > places) throw new Error(`${what}: expected a number with at most ${places} decimals, got "${text}"`);
  return big(match[1]) * 10n ** BigInt(places) + big((match[2] ?? '').padEnd(places, '0') || 0);
}
function amount(minor, asset) {
  if (asset === 'CNY') return `¥${decimal(minor, 2)}`;
  if (String(asset).startsWith('GPUH:')) return `${decimal(big(minor) * 100n / 3600n, 2)} GPU-h`;
  if (String(asset).startsWith('TOK:')) return `${decimal(minor, 0)} tokens`;
  return decimal(minor, 0);
}
const when = (ns) => (ns ? new Date(Number(big(ns) / 1000000n)).toISOString().replace('T', ' ').slice(0, 19) : '');
function randomU64() {
  const bytes = crypto.getRandomValues(new Uint8Array(6)); // 48 bits: readable, unique enough for ids
  return bytes.reduce((acc, b) => acc * 256n + BigInt(b), 0n).toString();
}
function table(headers, rows) {
  if (!rows.length) return '<p class="hint">none</p>';
  const head = headers.map((h) => `<th class="${h.endsWith('#') ? 'num' : ''}">${esc(h.replace(/#$/, ''))}</th>`).join('');
  const body = rows.map((row) => `<tr>${row.map((cell, i) => `<td class="${headers[i]?.endsWith('#') ? 'num' : ''}">${cell}</td>`).join('')}</tr>`).join('');
  return `<table><thead><tr>${head}</tr></thead><tbody>${body}</tbody></table>`;
}

// ---------- the API ----------

class ApiError extends Error {
  constructor(status, code, message) { super(`${code}: ${message}`); this.status = status; this.code = code; }
}

async function api(method, path, body) {
  const init = { method, headers: {} };
  if (body !== undefined) { init.headers['content-type'] = 'application/json'; init.body = JSON.stringify(body); }
  let response;
  try { response = await fetch(path, init); } catch (error) { throw new ApiError(0, 'unreachable', `the node did not answer: ${error.message}`); }
  const text = await response.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* not JSON: reported below */ }
  if (!response.ok) throw new ApiError(response.status, json?.code ?? `http_${response.status}`, json?.message ?? text);
  if (json === null) throw new ApiError(response.status, 'not_json', `${path} answered something that is not JSON`);
  return json;
}
const get = (path) => api('GET', path);

/** Signs `command` with the loaded key and posts it to `route`; the API's answer or an error. */
async function submit(route, command) {
  const key = state.key;
  if (!key) throw new ApiError(0, 'no_key', 'import or create a key first: writes are signed in this browser');
  const nonce = crypto.getRandomValues(new Uint8Array(16)).reduceRight((acc, b) => acc * 256n + BigInt(b), 0n);
  const expires = BigInt(Date.now()) * 1000000n + ENVELOPE_LIFETIME_NS;
  const body = { signer: key.party, key: key.publicKey, nonce: nonce.toString(), expires_at_ns: expires.toString(), command };
  const { signing_bytes: signingBytes } = await api('POST', '/v1/commands/canonical', body);
  const signature = await crypto.subtle.sign({ name: 'Ed25519' }, key.privateKey, unhex(signingBytes));
  return api('POST', route, { body, signature: hex(signature) });
}

/** Runs a form's action, showing the API's error text (or the success line) under it. */
function wireForm(form, action) {
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const error = $('.error', form);
    const ok = $('.ok', form);
    error.textContent = '';
    if (ok) ok.textContent = '';
    const button = $('button[type=submit]', form);
    button.disabled = true;
    try {
      const message = await action(new FormData(form), form);
      if (ok && message) ok.textContent = message;
      refresh();
    } catch (failure) {
      error.textContent = failure instanceof ApiError ? failure.message : `bad input: ${failure.message}`;
    } finally {
      button.disabled = false;
    }
  });
}

// ---------- keys ----------

/** Browsers give WebCrypto only to secure contexts: https, or loopback addresses. */
const NO_WEBCRYPTO = 'this page cannot sign: browsers give WebCrypto only to https pages and to localhost or 127.0.0.1; open the console there (an SSH tunnel to the node will do)';

async function loadKey(file) {
  if (!crypto.subtle) throw new Error(NO_WEBCRYPTO);
  if (typeof file !== 'object' || file === null) throw new Error('a key file is a JSON object');
  const { party, public_key: publicKey, secret_key: secretKey } = file;
  if (typeof party !== 'string' || !/^[a-z0-9._-]{1,64}$/.test(party)) throw new Error(`invalid party id ${JSON.stringify(party)}`);
  let seed;
  try { seed = unhex(secretKey ?? ''); } catch { throw new Error('secret_key: not hex'); }
  if (seed.length !== 32) throw new Error(`secret_key: expected 32 bytes (64 hex characters), got ${seed.length}`);
  const pkcs8 = new Uint8Array([...unhex(PKCS8_ED25519_PREFIX), ...seed]);
  let privateKey;
  try {
    privateKey = await crypto.subtle.importKey('pkcs8', pkcs8, { name: 'Ed25519' }, true, ['sign']);
  } catch (error) {
    if (error.name === 'NotSupportedError') throw new Error(`this browser has no Ed25519 in WebCrypto (Chromium 137 or later, Firefox 129 or later, Safari 17 or later have it): ${error.message}`);
    throw new Error(`secret_key: not an Ed25519 seed (${error.message})`);
  }
  const jwk = await crypto.subtle.exportKey('jwk', privateKey);
  const derived = hex(b64urlToBytes(jwk.x));
  if (derived !== String(publicKey ?? '').trim().toLowerCase()) throw new Error('public_key does not match secret_key (the file is corrupt or was edited)');
  return { party, publicKey: derived, secretKey: hex(seed), privateKey };
}

async function useKey(file) {
  const key = await loadKey(file);
  state.keys[key.party] = { party: key.party, public_key: key.publicKey, secret_key: key.secretKey };
  localStorage.setItem(KEYS_STORAGE, JSON.stringify(state.keys));
  state.key = key;
  document.querySelectorAll('main form .error, main form .ok').forEach((node) => { node.textContent = ''; });
  let role = '';
  try { role = (await get(`/v1/parties/${encodeURIComponent(key.party)}`)).role; } catch (error) { role = `not registered (${error.code})`; }
  state.key.role = role;
  const view = { sme: 'sme', institution: 'institution', government: 'government', auditor: 'auditor', operator: 'operator' }[role];
  if (view) showView(view);
  renderKeys();
  refresh();
}

function renderKeys() {
  const key = state.key;
  $('#key-current').innerHTML = key
    ? `Signing as <b id="key-party">${esc(key.party)}</b> (${esc(key.role ?? '')}), key <span class="mono">${esc(key.publicKey)}</span>`
    : 'No key loaded: the views are read-only.';
  const parties = Object.keys(state.keys);
  $('#key-list').innerHTML = parties.length
    ? `Keys in this browser: ${parties.map((p) => `<button data-use="${esc(p)}">${esc(p)}</button> <button data-forget="${esc(p)}" title="remove from this browser">✕</button>`).join(' ')}`
    : '';
  document.querySelectorAll('.who').forEach((node) => { node.textContent = key ? key.party : '(no key)'; });
  $('#key-forms').open = !key;
}

function initKeys() {
  try { state.keys = JSON.parse(localStorage.getItem(KEYS_STORAGE) ?? '{}') ?? {}; } catch { state.keys = {}; }
  wireForm($('#key-import'), async () => {
    const input = $('#key-file');
    const text = input.files?.length ? await input.files[0].text() : $('#key-text').value;
    if (!text.trim()) throw new Error('choose a key file or paste its text');
    let file;
    try { file = JSON.parse(text); } catch { throw new Error('expected {"party": ..., "public_key": hex, "secret_key": hex}'); }
    await useKey(file);
    input.value = '';
    $('#key-text').value = '';
  });
  wireForm($('#key-new'), async () => {
    if (!crypto.subtle) throw new Error(NO_WEBCRYPTO);
    const party = $('#key-new-party').value.trim();
    if (!/^[a-z0-9._-]{1,64}$/.test(party)) throw new Error(`invalid party id ${JSON.stringify(party)}: 1 to 64 of a-z 0-9 . _ -`);
    const pair = await crypto.subtle.generateKey({ name: 'Ed25519' }, true, ['sign', 'verify']);
    const pkcs8 = new Uint8Array(await crypto.subtle.exportKey('pkcs8', pair.privateKey));
    const file = { party, public_key: hex(await crypto.subtle.exportKey('raw', pair.publicKey)), secret_key: hex(pkcs8.slice(-32)) };
    await useKey(file);
    const link = document.createElement('a');
    link.href = URL.createObjectURL(new Blob([JSON.stringify(file, null, 2) + '\n'], { type: 'application/json' }));
    link.download = `${party}.json`;
    link.textContent = `save ${party}.json`;
    $('#key-list').append(' ', link);
  });
  $('#key-list').addEventListener('click', async (event) => {
    const use = event.target.dataset.use;
    const forget = event.target.dataset.forget;
    if (use) await useKey(state.keys[use]);
    if (forget) {
      delete state.keys[forget];
      localStorage.setItem(KEYS_STORAGE, JSON.stringify(state.keys));
      if (state.key?.party === forget) state.key = null;
      renderKeys();
    }
  });
  renderKeys();
}

// ---------- views ----------

function showView(view) {
  state.view = view;
  document.querySelectorAll('.view').forEach((node) => node.classList.toggle('active', node.id === `view-${view}`));
  document.querySelectorAll('#views button').forEach((node) => node.classList.toggle('active', node.dataset.view === view));
  refresh();
}

/** How far back the views' statements and charts go: a busy account's whole history would be
 * too long a statement to read every POLL_MS (`statement_too_large` past 80,000 lines). */
const STATEMENT_WINDOW_NS = 24n * 3600n * 1000000000n;

/** The party's accounts with their balances (closing: now) and the last day's lines, from its
 * statements (one per account). */
async function accountsOf(party) {
  const from = BigInt(Date.now()) * 1000000n - STATEMENT_WINDOW_NS;
  const { statements } = await get(`/v1/parties/${encodeURIComponent(party)}/statement?from_ns=${from}`);
  return statements;
}
const available = (b) => big(b.credits_posted) - big(b.debits_posted) - big(b.debits_pending);

function balancesTable(statements) {
  return table(['account', 'asset', 'available#', 'pending in#', 'pending out#'], statements.map(({ account, closing }) => [
    esc(account.id), esc(account.asset), `<span data-account="${esc(account.id)}">${esc(amount(available(closing), account.asset))}</span>`,
    esc(amount(closing.credits_pending, account.asset)), esc(amount(closing.debits_pending, account.asset)),
  ]));
}

function fillSelect(select, options, keep = true) {
  const previous = select.value;
  const html = options.map(([value, label]) => `<option value="${esc(value)}">${esc(label)}</option>`).join('');
  if (select.dataset.html !== html) {
    select.innerHTML = html;
    select.dataset.html = html;
    if (keep && options.some(([value]) => value === previous)) select.value = previous;
  }
}

async function renderSme() {
  const party = state.key?.party;
  const products = await get('/v1/products');
  fillSelect($('#product-select'), products.products.map((p) => [p.spec.product_id, p.spec.product_id]));
  const { packages } = await get('/v1/packages');
  $('#sme-shelf').innerHTML = table(['package', 'title', 'asset', 'quantity#', 'price#', 'remaining#'], packages.map((p) => [
    esc(p.spec.package_id), esc(p.spec.title), esc(p.spec.asset), esc(amount(p.spec.quantity, p.spec.asset)), esc(amount(p.spec.price, 'CNY')), esc(p.remaining),
  ]));
  fillSelect($('#buy-form [name=package]'), packages.map((p) => [p.spec.package_id, `${p.spec.package_id} (${amount(p.spec.price, 'CNY')})`]));
  const buyId = $('#buy-form [name=purchase_id]');
  if (!buyId.value) buyId.value = randomU64();
  await renderMarket();
  if (!party) {
    for (const id of ['#sme-balances', '#sme-vouchers', '#sme-quotas', '#sme-orders']) $(id).innerHTML = '<p class="hint">import a key to see your own</p>';
    return;
  }
  const statements = await accountsOf(party);
  state.accounts = statements.map((s) => s.account);
  $('#sme-balances').innerHTML = balancesTable(statements);
  const { vouchers } = await get(`/v1/parties/${encodeURIComponent(party)}/vouchers`);
  $('#sme-vouchers').innerHTML = table(['voucher', 'programme', 'amount#', 'paid#', 'remaining#', 'status', 'paid towards'], vouchers.map((v) => [
    esc(v.spec.voucher_id), esc(v.spec.programme_id), esc(amount(v.spec.amount, 'CNY')), esc(amount(v.redeemed, 'CNY')),
    `<span data-voucher-remaining="${esc(v.spec.voucher_id)}">${esc(amount(v.remaining, 'CNY'))}</span>`, esc(typeof v.status === 'string' ? v.status : Object.keys(v.status)[0]),
    esc(v.redemptions.slice(-3).map((r) => `${amount(r.paid, 'CNY')} of ${amount(r.price, 'CNY')} to ${r.seller} (entry ${r.journal_index})`).join('; ')),
  ]));
  const voucherOptions = [['', 'no voucher'], ...vouchers.filter((v) => big(v.remaining) > 0n).map((v) => [v.spec.voucher_id, `${v.spec.voucher_id} ${v.spec.programme_id} (${amount(v.remaining, 'CNY')} left)`])];
  fillSelect($('#buy-form [name=voucher]'), voucherOptions);
  fillSelect($('#order-form [name=voucher]'), voucherOptions);
  const tokenAccounts = statements.filter((s) => String(s.account.asset).startsWith('TOK:'));
  const blocks = [];
  for (const s of tokenAccounts) {
    const quotas = await get(`/v1/accounts/${s.account.id}/quotas`);
    const { alerts } = await get(`/v1/accounts/${s.account.id}/alerts`);
    const t = quotas.totals;
    blocks.push(`<h4>Account ${esc(s.account.id)} (${esc(s.account.asset)}): <span data-quota-remaining="${esc(s.account.id)}">${esc(amount(t.remaining, s.account.asset))}</span> remaining of ${esc(amount(t.granted, s.account.asset))} granted, ${esc(amount(t.used, s.account.asset))} used</h4>`
      + quotaChart(quotas.quotas)
      + '<h4>Tokens used over time</h4>'
      + lineChart(s.lines.filter((l) => l.side === 'debit').map((l) => [Number(big(l.timestamp_ns) / 1000000n), Number(big(l.balances_after.debits_posted))]), 'tokens used (cumulative)')
      + table(['quota', 'provider', 'granted#', 'used#', 'remaining#', 'expires', 'state'], quotas.quotas.map((q) => [
        esc(q.quota_id), esc(q.provider), esc(decimal(q.granted, 0)), esc(decimal(q.used, 0)), esc(decimal(q.remaining, 0)), esc(when(q.expires_at_ns)), esc(typeof q.state === 'string' ? q.state : Object.keys(q.state)[0]),
      ]))
      + `<p class="hint">Alerts fire at 80% and 100% of a quota.</p>`
      + table(['alert', 'quota', 'threshold', 'used#', 'at'], alerts.map((a) => [esc(a.sequence), esc(a.quota_id), `${esc(a.threshold_pct)}%`, esc(decimal(a.used, 0)), esc(when(a.at_ns))])));
  }
  $('#sme-quotas').innerHTML = blocks.join('') || '<p class="hint">no token account</p>';
  const { orders } = await get(`/v1/parties/${encodeURIComponent(party)}/orders`);
  $('#sme-orders').innerHTML = table(['order', 'product', 'side', 'price#', 'open lots#', ''], orders.map((o) => [
    esc(o.spec.order_id), esc(o.spec.product_id), esc(o.spec.side), esc(o.spec.price == null ? 'market' : amount(o.spec.price, 'CNY')),
    esc(o.open_lots), `<button data-cancel="${esc(o.spec.order_id)}">cancel</button>`,
  ]));
}

async function renderMarket() {
  const product = $('#product-select').value;
  if (!product) return;
  const q = `product=${encodeURIComponent(product)}`;
  const [depth, trades, candles] = await Promise.all([get(`/v1/market/depth?${q}`), get(`/v1/market/trades?${q}`), get(`/v1/market/candles?${q}&interval_s=60`)]);
  $('#market-depth').innerHTML = depthChart(depth) + table(['bid lots#', 'bid#', 'ask#', 'ask lots#'], Array.from({ length: Math.max(depth.bids.length, depth.asks.length) }, (_, i) => [
    esc(depth.bids[i]?.lots ?? ''), esc(depth.bids[i] ? amount(depth.bids[i].price, 'CNY') : ''), esc(depth.asks[i] ? amount(depth.asks[i].price, 'CNY') : ''), esc(depth.asks[i]?.lots ?? ''),
  ]).slice(0, 8));
  $('#market-trades').innerHTML = table(['trade', 'at', 'price#', 'lots#', 'buyer', 'seller'], trades.trades.slice(-12).reverse().map((t) => [
    esc(t.trade_id), esc(when(t.at_ns)), esc(amount(t.price, 'CNY')), esc(t.lots), esc(t.buyer), esc(t.seller),
  ]));
  $('#market-candles').innerHTML = candleChart(candles.candles);
}

function accountFor(asset) {
  return state.accounts?.find((a) => a.asset === asset && a.kind === 'main')?.id;
}

function initSme() {
  wireForm($('#buy-form'), async (data) => {
    const packageId = data.get('package');
    const pkg = await get(`/v1/packages/${encodeURIComponent(packageId)}`);
    const pay = accountFor('CNY');
    const receive = accountFor(pkg.spec.asset);
    if (!pay || !receive) throw new Error(`you need a CNY and a ${pkg.spec.asset} account to buy ${packageId}`);
    const voucher = data.get('voucher');
    const purchaseId = String(data.get('purchase_id')).trim();
    const answer = await submit('/v1/purchases', { buy_package: { purchase: {
      purchase_id: purchaseId, package_id: packageId, pay_account_id: pay, receive_account_id: receive, vouchers: voucher ? [voucher] : [],
    } } });
    $('#buy-form [name=purchase_id]').value = randomU64();
    const paid = answer.outcome?.result?.accepted?.package_bought?.vouchers ?? [];
    const byVoucher = paid.map((v) => `voucher ${v.voucher_id} paid ${amount(v.paid, 'CNY')}`).join(', ');
    return `bought ${packageId} in journal entry ${answer.journal_index}${byVoucher ? `; ${byVoucher}` : ''}`;
  });
  wireForm($('#order-form'), async (data) => {
    const product = (await get('/v1/products')).products.find((p) => p.spec.product_id === $('#product-select').value);
    if (!product) throw new Error('choose a product');
    const spec = product.spec;
    const lots = toMinor(data.get('lots'), 0, 'lots');
    const market = data.get('type') === 'market';
    const voucher = data.get('voucher');
    const order = {
      order_id: randomU64(), product_id: spec.product_id, side: data.get('side'),
      price: market ? null : toMinor(data.get('price'), 2, 'price').toString(),
      quantity: (lots * big(spec.lot_size)).toString(), time_in_force: data.get('tif'), post_only: data.get('post_only') === 'on', self_trade: 'cancel_taker',
      base_account_id: accountFor(spec.base) ?? '0', quote_account_id: accountFor(spec.quote) ?? '0', vouchers: voucher && data.get('side') === 'buy' ? [voucher] : [],
    };
    const answer = await submit('/v1/orders', { place_order: { order } });
    return `order ${order.order_id} placed in journal entry ${answer.journal_index}`;
  });
  $('#sme-orders').addEventListener('click', async (event) => {
    const id = event.target.dataset.cancel;
    if (!id) return;
    $('#cancel-error').textContent = '';
    try { await submit('/v1/orders/cancel', { cancel_order: { order_id: id } }); refresh(); } catch (error) { $('#cancel-error').textContent = error.message; }
  });
  $('#product-select').addEventListener('change', refresh);
}

async function scanHosts(party) {
  // No route lists a party's hosts, so the console reads the journal once, then only what is new.
  const head = (await get('/v1/head')).head.index;
  while (state.hosts.scanned < head) {
    const page = await get(`/v1/journal?from=${state.hosts.scanned + 1}&limit=1000`);
    if (!page.entries.length) break;
    for (const entry of page.entries) {
      const signed = entry.body.command.body;
      const host = signed.command.register_host?.host;
      if (host && signed.signer === party && entry.body.outcome.result?.accepted !== undefined) state.hosts.ids.push(host.host_id);
      state.hosts.scanned = entry.body.index;
    }
  }
}

/** Transfer codes a statement shows (`spec/bank.md`, `spec/market.md`, `spec/vouchers.md`). */
const CODES = {
  1: 'funding', 1001: 'offer reserved', 1002: 'offer delivered', 1003: 'offer released', 1010: 'withdrawal reserved', 1011: 'withdrawal charged', 1012: 'withdrawal cancelled',
  2001: 'goods of a fill', 2002: 'money of a fill', 2003: 'fee of a fill', 2004: 'rounding of a fill', 2010: 'order reserved', 2011: 'order reservation released',
  2020: 'package stock escrowed', 2021: 'package paid', 2022: 'package delivered', 2030: 'tokens used', 2031: 'quota expired',
  3002: 'voucher issued', 3003: 'voucher paid', 3004: 'voucher revoked', 3005: 'voucher expired',
};

/** An enum as serde writes it (`"queued"` or `{"allocated": {"allocation_id": "7"}}`) in words. */
function stateText(value) {
  if (typeof value === 'string') return value;
  return Object.entries(value ?? {}).map(([name, fields]) => `${name} (${Object.entries(fields ?? {}).map(([k, v]) => `${k.replace(/_/g, ' ')} ${v}`).join(', ')})`).join(' ');
}

async function renderInstitution() {
  const party = state.key?.party;
  if (!party) { $('#inst-hosts').innerHTML = '<p class="hint">import an institution key</p>'; return; }
  if (state.hosts.party !== party) state.hosts = { party, scanned: 0, ids: [] };
  await scanHosts(party);
  const hostRows = [];
  const offerRows = [];
  for (const id of state.hosts.ids) {
    const host = await get(`/v1/hosts/${encodeURIComponent(id)}`);
    const { allocations } = await get(`/v1/hosts/${encodeURIComponent(id)}/allocations?state=all`);
    hostRows.push([esc(id), esc(host.spec.region), esc(`${host.spec.gpu_count}× ${host.spec.gpu_class}`), `<span class="mono">${esc(host.spec.agent_key.slice(0, 16))}…</span>`, esc(allocations.length)]);
    const { offers } = await get(`/v1/hosts/${encodeURIComponent(id)}/offers`);
    for (const o of offers) offerRows.push([esc(o.spec.offer_id), esc(id), esc(o.spec.gpu_count), esc(when(o.spec.start_ns)), esc(when(o.spec.end_ns)), esc(decimal(big(o.delivered_gpu_s) * 100n / 3600n, 2)), esc(decimal(big(o.down_gpu_s) * 100n / 3600n, 2))]);
  }
  $('#inst-hosts').innerHTML = table(['host', 'region', 'GPUs', 'agent key', 'allocations#'], hostRows);
  $('#inst-offers').innerHTML = table(['offer', 'host', 'GPUs#', 'from', 'to', 'delivered GPU-h#', 'down GPU-h#'], offerRows);
  const statements = await accountsOf(party);
  state.accounts = statements.map((s) => s.account);
  $('#inst-balances').innerHTML = balancesTable(statements);
  const gpu = statements.filter((s) => String(s.account.asset).startsWith('GPUH:'));
  // Delivered time is credited by code 1002 (OFFER_DELIVERED); time drawn is charged by 1011
  // (WITHDRAWAL_CHARGED) (`spec/bank.md`).
  const cumulative = (lines, code) => {
    let total = 0n;
    return lines.filter((l) => l.code === code && l.state !== 'voided').map((l) => { total += big(l.amount); return [Number(big(l.timestamp_ns) / 1000000n), Number(total * 100n / 3600n) / 100]; });
  };
  $('#inst-gpu-chart').innerHTML = gpu.map((s) => `<h4>${esc(s.account.asset)} (account ${esc(s.account.id)})</h4>` + linesChart([
    { points: cumulative(s.lines, 1002), color: '#2e8b57', label: 'delivered and credited (GPU-h)' },
    { points: cumulative(s.lines, 1011), color: '#c0392b', label: 'drawn and charged (GPU-h)' },
  ])).join('') || '<p class="hint">no GPU-hour account</p>';
  const { withdrawals } = await get(`/v1/parties/${encodeURIComponent(party)}/withdrawals`);
  $('#inst-withdrawals').innerHTML = table(['withdrawal', 'class', 'GPUs#', 'hours#', 'state'], withdrawals.map((w) => [
    esc(w.spec.withdrawal_id), esc(w.spec.gpu_class), esc(w.spec.gpu_count), esc(decimal(big(w.spec.duration_s) * 100n / 3600n, 2)), esc(stateText(w.state)),
  ]));
  $('#inst-statement').innerHTML = statements.map((s) => `<h4>${esc(s.account.asset)} account ${esc(s.account.id)}: ${esc(amount(available(s.closing), s.account.asset))} available</h4>` + table(['entry#', 'at', 'what', 'movement', 'side', 'amount#', 'reference'], s.lines.slice(-10).map((l) => [
    esc(l.journal_index), esc(when(l.timestamp_ns)), esc(CODES[l.code] ?? `code ${l.code}`), esc(stateText(l.movement).replace(/_/g, ' ')), esc(l.side), esc(amount(l.amount, s.account.asset)), esc(l.reference === '0' ? '' : l.reference),
  ]))).join('');
}

function initInstitution() {
  wireForm($('#withdraw-form'), async (data) => {
    const gpuClass = String(data.get('class')).trim();
    const hours = toMinor(data.get('hours'), 2, 'hours');
    const withdrawal = {
      withdrawal_id: randomU64(), account_id: accountFor(`GPUH:${gpuClass}`) ?? '0', gpu_class: gpuClass,
      gpu_count: Number(toMinor(data.get('count'), 0, 'GPUs')), duration_s: Number(hours * 3600n / 100n), region: String(data.get('region')).trim() || null,
    };
    const answer = await submit('/v1/withdrawals', { request_withdrawal: { withdrawal } });
    return `withdrawal ${withdrawal.withdrawal_id} requested in journal entry ${answer.journal_index}`;
  });
}

async function renderGovernment() {
  const party = state.key?.party;
  const { programmes } = await get('/v1/programmes');
  const mine = programmes.filter((p) => !party || p.government === party);
  $('#gov-programmes').innerHTML = table(['programme', 'title', 'share', 'budget#', 'unissued#', 'issued#', 'redeemed#', 'revoked#', 'expired#', 'outstanding#'], mine.map((p) => [
    esc(p.spec.programme_id), esc(p.spec.title), `${p.spec.max_share_bps / 100}%`, ...['budget', 'unissued', 'issued', 'redeemed', 'revoked', 'expired', 'outstanding'].map((k) => esc(amount(p.totals[k], 'CNY'))),
  ]));
  const options = mine.map((p) => [p.spec.programme_id, p.spec.programme_id]);
  fillSelect($('#issue-form [name=programme]'), options);
  fillSelect($('#report-select'), options);
  const voucherId = $('#issue-form [name=voucher_id]');
  if (!voucherId.value) voucherId.value = randomU64();
  const programme = $('#report-select').value;
  if (!programme) return;
  const base = `/v1/programmes/${encodeURIComponent(programme)}/report`;
  $('#report-csv').href = `${base}?format=csv`;
  $('#report-json').href = `${base}?format=json`;
  const report = await get(base);
  $('#gov-report-totals').innerHTML = table(['budget#', 'unissued#', 'issued#', 'redeemed#', 'revoked#', 'expired#', 'outstanding#', 'at entry#'], [[
    ...['budget', 'unissued', 'issued', 'redeemed', 'revoked', 'expired', 'outstanding'].map((k) => `<span data-total="${k}">${esc(amount(report[k], 'CNY'))}</span>`), esc(report.journal_head?.index),
  ]]);
  const redeemed = report.lines.filter((l) => l.kind === 'redeemed');
  let running = 0n;
  $('#gov-chart-time').innerHTML = lineChart(redeemed.map((l) => { running += big(l.amount); return [Number(big(l.at_ns) / 1000000n), Number(running) / 100]; }), 'yuan redeemed (cumulative)');
  $('#gov-chart-seller').innerHTML = barChart(report.sellers.map((s) => [s.party, Number(big(s.redeemed)) / 100]), 'yuan');
  $('#gov-report-lines').innerHTML = table(['kind', 'voucher', 'beneficiary', 'seller', 'amount#', 'at', 'entry#', 'entry hash'], report.lines.slice(-20).reverse().map((l) => [
    esc(l.kind), esc(l.voucher_id ?? ''), esc(l.beneficiary ?? ''), esc(l.seller ?? ''), esc(amount(l.amount, 'CNY')), esc(when(l.at_ns)), esc(l.journal_index), `<span class="mono">${esc((l.journal_hash ?? '').slice(0, 16))}…</span>`,
  ]));
}

function initGovernment() {
  wireForm($('#issue-form'), async (data) => {
    const days = toMinor(data.get('days'), 0, 'days');
    const voucher = {
      voucher_id: String(data.get('voucher_id')).trim(), programme_id: data.get('programme'), beneficiary: String(data.get('beneficiary')).trim(),
      amount: toMinor(data.get('amount'), 2, 'amount').toString(), expires_at_ns: (BigInt(Date.now()) * 1000000n + days * 86400n * 1000000000n).toString(),
    };
    const answer = await submit('/v1/vouchers', { issue_voucher: { voucher } });
    $('#issue-form [name=voucher_id]').value = randomU64();
    $('#report-select').value = voucher.programme_id;
    return `voucher ${voucher.voucher_id} issued to ${voucher.beneficiary} in journal entry ${answer.journal_index}`;
  });
  wireForm($('#revoke-form'), async (data) => {
    const answer = await submit('/v1/vouchers/revoke', { revoke_voucher: { voucher_id: String(data.get('voucher_id')).trim() } });
    const returned = answer.outcome?.result?.accepted?.voucher_revoked?.returned;
    return `revoked in journal entry ${answer.journal_index}${returned ? `; ${amount(returned, 'CNY')} returned to the programme` : ''}`;
  });
  $('#report-select').addEventListener('change', refresh);
  wireForm($('#programme-form'), async (data) => {
    if (!state.key) throw new ApiError(0, 'no_key', 'import a government key first');
    const statements = await accountsOf(state.key.party);
    const funding = statements.find((s) => s.account.asset === 'CNY' && s.account.kind === 'main')?.account.id;
    if (!funding) throw new Error(`${state.key.party} has no CNY account to fund a programme from`);
    const nowNs = BigInt(Date.now()) * 1000000n;
    const programme = {
      programme_id: String(data.get('programme_id')).trim(), title: String(data.get('title')).trim(),
      budget: toMinor(data.get('budget'), 2, 'budget').toString(), funding_account_id: funding,
      eligible: { products: [], packages: [], assets: String(data.get('assets')).split(',').map((a) => a.trim()).filter(Boolean) },
      max_share_bps: Number(toMinor(data.get('share'), 2, 'share')), cap_per_beneficiary_per_year: toMinor(data.get('cap'), 2, 'cap').toString(),
      valid_from_ns: nowNs.toString(), valid_until_ns: (nowNs + toMinor(data.get('days'), 0, 'days') * 86400n * 1000000000n).toString(),
      beneficiaries: { role: data.get('role') }, stackable: false,
    };
    const answer = await submit('/v1/programmes', { create_programme: { programme } });
    return `programme ${programme.programme_id} created in journal entry ${answer.journal_index}`;
  });
}

async function renderAuditor() {
  const [{ head, checkpoint }, cluster] = await Promise.all([get('/v1/head?consistency=local'), get('/v1/cluster')]);
  $('#aud-head').innerHTML = table(['entry#', 'hash'], [[esc(head.index), `<span class="mono" id="aud-head-hash">${esc(head.hash)}</span>`]]);
  if (!state.verified) {
    $('#aud-checkpoints').innerHTML = table(['node', 'entry#', 'node key', 'signature'], [[esc(cluster.node_id), esc(checkpoint.head.index), `<span class="mono">${esc(checkpoint.node_key)}</span>`, `<span class="mono">${esc(checkpoint.signature.slice(0, 24))}…</span>`]])
      + '<p class="hint">Verify to collect every member\'s signature.</p>';
  }
}

/**
 * Checks the journal's hash chain from entry 1 to `to` in this browser: each entry's canonical
 * bytes are its body's bytes followed by its 32-byte hash, and that hash must be
 * blake3(the previous hash ‖ the body's bytes), from 32 zero bytes before entry 1.
 */
async function checkChain(to) {
  if (!blake3SelfTest()) return { ok: false, entries: 0, why: 'this browser computes blake3 wrongly (self-test failed)' };
  let previous = new Uint8Array(32);
  let count = 0;
  while (count < to) {
    const page = await get(`/v1/journal/raw?from=${count + 1}&limit=${Math.min(1000, to - count)}`);
    if (page.first_index > 1) return { ok: false, entries: count, why: `this node stores the journal only from entry ${page.first_index} (it installed a snapshot): ask another node` };
    if (!page.entries.length) break;
    for (const text of page.entries) {
      const bytes = unhex(text);
      const body = bytes.subarray(0, bytes.length - 32);
      const claimed = bytes.subarray(bytes.length - 32);
      const computed = blake3(new Uint8Array([...previous, ...body]));
      if (hex(computed) !== hex(claimed)) return { ok: false, entries: count, why: `entry ${count + 1}: its hash is not blake3 of the entry before and its body` };
      previous = computed;
      count += 1;
      if (count === to) break;
    }
  }
  return { ok: count === to, entries: count, head: hex(previous) };
}

/** `cbank.checkpoint.v1\0 ‖ index (u64 little-endian) ‖ hash`: what a node signs (`ledger::journal`). */
function checkpointBytes(head) {
  const domain = new TextEncoder().encode('cbank.checkpoint.v1\0');
  const index = new Uint8Array(8);
  new DataView(index.buffer).setBigUint64(0, big(head.index), true);
  return new Uint8Array([...domain, ...index, ...unhex(head.hash)]);
}

async function checkpointVerifies(checkpoint) {
  const key = await crypto.subtle.importKey('raw', unhex(checkpoint.node_key), { name: 'Ed25519' }, false, ['verify']);
  return crypto.subtle.verify({ name: 'Ed25519' }, key, unhex(checkpoint.signature), checkpointBytes(checkpoint.head));
}

function initAuditor() {
  wireForm($('#verify-form'), async (data) => {
    const params = new URLSearchParams();
    if (String(data.get('to')).trim()) params.set('to', String(data.get('to')).trim());
    if (String(data.get('trust')).trim()) params.set('trust', String(data.get('trust')).replace(/\s+/g, ''));
    $('#aud-result').innerHTML = '<p class="hint">verifying…</p>';
    const result = await get(`/v1/audit/verify?${params}`);
    const { entries: [entry] } = await get(`/v1/journal?from=${result.to}&limit=1`);
    const chain = await checkChain(result.to);
    const trusted = new Set(result.trusted);
    const rows = [];
    let browserSigners = 0;
    for (const { node_id: nodeId, checkpoint } of result.checkpoints) {
      const signatureOk = await checkpointVerifies(checkpoint);
      // The hash this browser reached along the chain (the node's word for it only if the chain
      // could not be walked here).
      const sameHash = checkpoint.head.hash === (chain.ok ? chain.head : entry.hash) && checkpoint.head.index === result.to;
      if (signatureOk && sameHash && trusted.has(checkpoint.node_key)) browserSigners += 1;
      rows.push([esc(nodeId), esc(checkpoint.head.index), `<span class="mono">${esc(checkpoint.node_key)}</span>`,
        signatureOk ? '<span class="pass">signature valid</span>' : '<span class="fail">signature INVALID</span>',
        sameHash ? '<span class="pass">names the chain\'s hash</span>' : '<span class="fail">different hash</span>']);
    }
    for (const { node_id: nodeId, message } of result.unreachable) rows.push([esc(nodeId), '', '', `<span class="fail">${esc(message)}</span>`, '']);
    state.verified = true;
    $('#aud-checkpoints').innerHTML = table(['node', 'entry#', `node key (trusted: ${result.trusted_from})`, 'in this browser', ''], rows);
    const quorum = browserSigners * 2 > trusted.size;
    const chainOk = chain.ok && chain.head === entry.hash && chain.entries === result.to;
    const passed = result.verified && quorum && chainOk;
    $('#aud-result').innerHTML = `<p id="verify-verdict" class="${passed ? 'pass' : 'fail'}">${passed ? 'VERIFIED' : 'NOT VERIFIED'}: entries 1 to ${esc(result.to)}</p>`
      + table(['check', 'by', 'result'], [
        ['blake3 chain of entries 1 to N over their canonical bytes', 'browser', chainOk
          ? `<span class="pass" id="chain-verdict">ok: ${esc(chain.entries)} entries chain to ${esc(chain.head.slice(0, 16))}…, the hash the checkpoints sign</span>`
          : `<span class="fail" id="chain-verdict">${esc(chain.why ?? `the chain ends at ${chain.head} after ${chain.entries} entries`)}</span>`],
        ['blake3 chain, replay of every signed command, invariants', 'node', result.verified ? `<span class="pass">ok: ${esc(result.entries)} entries, head ${esc(result.head.hash.slice(0, 16))}…</span>` : `<span class="fail">entry ${esc(result.failure?.index ?? '')}: ${esc(result.failure?.what)}</span>`],
        ['programme reports recomputed from the journal', 'node', esc(`${result.reports} report(s)`)],
        ['checkpoint signatures (Ed25519, WebCrypto)', 'browser', `<span class="${quorum ? 'pass' : 'fail'}">${browserSigners} of ${trusted.size} trusted node keys signed entry ${esc(result.to)}</span>`],
      ]);
    return '';
  });
}

async function renderOperator() {
  const cluster = await get('/v1/cluster');
  const now = Date.now();
  state.throughput.push([now, cluster.journal_head.index]);
  if (state.throughput.length > 120) state.throughput.shift();
  const rates = state.throughput.slice(1).map(([t, index], i) => [t, ((index - state.throughput[i][1]) * 1000) / Math.max(1, t - state.throughput[i][0])]);
  // Only the leader knows how far each member's log goes; a follower's console says so.
  const matched = new Map((cluster.replication ?? []).map((r) => [r.id, r.matched_index]));
  $('#op-cluster').innerHTML = table(['node', 'HTTP (its console)', 'Raft', 'voter', '', 'log index held#'], cluster.members.map((m) => [
    esc(m.id), `<a href="//${esc(m.http_addr)}/console/#operator">${esc(m.http_addr)}</a>`, esc(m.raft_addr), m.voter ? 'yes' : 'learner', m.id === cluster.leader_id ? '<b>leader</b>' : '',
    cluster.replication ? esc(matched.get(m.id) ?? '…') : (m.id === cluster.node_id ? esc(cluster.last_log_index) : '<span class="hint">ask the leader</span>'),
  ])) + table(['this node', 'role', 'term#', 'last log#', 'last applied#', 'journal head#'], [[
    esc(cluster.node_id), esc(cluster.role), esc(cluster.term), esc(cluster.last_log_index), esc(cluster.last_applied), esc(cluster.journal_head.index),
  ]]);
  $('#op-throughput').innerHTML = lineChart(rates, 'entries/s') + `<p>now: ${rates.length ? rates[rates.length - 1][1].toFixed(1) : '…'} entries/s</p>`;
}

const renderers = { sme: renderSme, institution: renderInstitution, government: renderGovernment, auditor: renderAuditor, operator: renderOperator };
let refreshing = false;

async function refresh() {
  if (refreshing) return;
  refreshing = true;
  try {
    const cluster = await get('/v1/cluster?consistency=local');
    $('#node-line').textContent = `node ${cluster.node_id} (${cluster.role}), leader ${cluster.leader_id ?? 'unknown'}, journal ${cluster.journal_head.index}`;
    await renderers[state.view]();
    $('#status').textContent = `updated ${new Date().toLocaleTimeString()}`;
  } catch (error) {
    $('#status').textContent = `could not refresh: ${error.message}`;
  } finally {
    refreshing = false;
  }
}

// ---------- charts (inline SVG) ----------

function svg(width, height, body) {
  return `<svg xmlns="${SVG}" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}">${body}</svg>`;
}
const fmt = (n) => (Math.abs(n) >= 1000 ? n.toFixed(0) : Math.abs(n) >= 10 ? n.toFixed(1) : n.toFixed(2));

/** A step line of (time ms, value) points. */
function lineChart(points, label) {
  return linesChart([{ points, color: '#1f6fb2', label }]);
}

/** Step lines of (time ms, value) points, one per series, on one time axis from zero. */
function linesChart(series) {
  const all = series.flatMap((s) => s.points);
  if (all.length === 0) return '<p class="hint">no data yet</p>';
  const W = 460, H = 140, L = 48, B = 18;
  const xs = all.map((p) => p[0]), ys = all.map((p) => p[1]);
  const x0 = Math.min(...xs), x1 = Math.max(...xs, x0 + 1), y1 = Math.max(...ys, 1e-9);
  const X = (x) => L + ((x - x0) / (x1 - x0)) * (W - L - 8);
  const Y = (y) => H - B - (y / y1) * (H - B - 10);
  const paths = series.map(({ points, color }, i) => {
    if (!points.length) return '';
    let path = `M${X(points[0][0])},${Y(0)}`;
    for (const [x, y] of points) path += ` H${X(x)} V${Y(y)}`;
    path += ` H${W - 8}`;
    return `<path d="${path}" fill="none" stroke="${color}" stroke-width="2" stroke-dasharray="${i ? '5,3' : ''}"/>`;
  }).join('');
  const legend = series.map(({ color, label }, i) => `<text x="${W - 8}" y="${12 + 12 * i}" text-anchor="end" fill="${color}">${esc(label)}</text>`).join('');
  return svg(W, H, `<line x1="${L}" y1="${H - B}" x2="${W - 8}" y2="${H - B}" stroke="#999"/><line x1="${L}" y1="8" x2="${L}" y2="${H - B}" stroke="#999"/>`
    + paths + `<text x="2" y="14">${fmt(y1)}</text><text x="2" y="${H - B}">0</text>`
    + `<text x="${L}" y="${H - 4}">${esc(new Date(x0).toLocaleTimeString())}</text>` + legend);
}

/** Horizontal bars of (label, value). */
function barChart(items, unit) {
  if (items.length === 0) return '<p class="hint">no redemptions yet</p>';
  const W = 460, row = 22, L = 130, max = Math.max(...items.map((i) => i[1]), 1e-9);
  return svg(W, items.length * row + 6, items.map(([label, value], i) => {
    const w = (value / max) * (W - L - 90);
    return `<text x="2" y="${i * row + 15}">${esc(label)}</text><rect x="${L}" y="${i * row + 4}" width="${w}" height="${row - 8}" fill="#2e8b57"/><text x="${L + w + 4}" y="${i * row + 15}">${fmt(value)} ${esc(unit)}</text>`;
  }).join(''));
}

/** Cumulative bids (green, stepping down to the left) and asks (red, to the right) by price. */
function depthChart(depth) {
  const bids = depth.bids.map((l) => [Number(l.price), Number(l.lots)]);
  const asks = depth.asks.map((l) => [Number(l.price), Number(l.lots)]);
  if (!bids.length && !asks.length) return '<p class="hint">the book is empty</p>';
  const W = 460, H = 150, B = 18;
  const cum = (levels) => { let total = 0; return levels.map(([p, q]) => [p, (total += q)]); };
  const cb = cum(bids), ca = cum(asks);
  const prices = [...cb, ...ca].map((p) => p[0]);
  const spread = Math.max(...prices) - Math.min(...prices);
  const pad = Math.max(spread * 0.25, Math.max(...prices) * 0.02, 1);
  const p0 = Math.min(...prices) - pad, p1 = Math.max(...prices) + pad, q1 = Math.max(...[...cb, ...ca].map((p) => p[1]), 1);
  const X = (p) => 10 + ((p - p0) / (p1 - p0)) * (W - 20);
  const Y = (q) => H - B - (q / q1) * (H - B - 14);
  const steps = (levels, edge, color) => {
    if (!levels.length) return '';
    let d = `M${X(levels[0][0])},${Y(0)}`;
    let previous = 0;
    for (const [p, q] of levels) { d += ` L${X(p)},${Y(previous)} L${X(p)},${Y(q)}`; previous = q; }
    d += ` L${X(edge)},${Y(previous)} L${X(edge)},${Y(0)} Z`;
    return `<path d="${d}" fill="${color}" fill-opacity=".35" stroke="${color}"/>`;
  };
  const label = (p, anchor) => `<text x="${X(p)}" y="${H - 4}" text-anchor="${anchor}">¥${decimal(BigInt(Math.round(p)), 2)}</text>`;
  return svg(W, H, steps(cb, p0, '#2e8b57') + steps(ca, p1, '#c0392b') + `<line x1="0" y1="${H - B}" x2="${W}" y2="${H - B}" stroke="#999"/>`
    + (cb.length ? label(cb[0][0], 'end') : '') + (ca.length ? label(ca[0][0], 'start') : '') + `<text x="4" y="12">${q1} lots</text>`
    + '<text x="' + (W - 4) + '" y="12" text-anchor="end">bids green, asks red</text>');
}

function candleChart(candles) {
  if (!candles.length) return '<p class="hint">no trades yet</p>';
  const W = 460, H = 150, B = 18, n = candles.length;
  const lows = candles.map((c) => Number(c.low)), highs = candles.map((c) => Number(c.high));
  const pad = Math.max((Math.max(...highs) - Math.min(...lows)) * 0.1, Math.max(...highs) * 0.01, 1);
  const lo = Math.min(...lows) - pad, hi = Math.max(...highs) + pad;
  const Y = (p) => 8 + (1 - (p - lo) / (hi - lo)) * (H - B - 16);
  const step = (W - 60) / Math.max(n, 1);
  return svg(W, H, candles.map((c, i) => {
    const x = 50 + i * step + step / 2, up = Number(c.close) >= Number(c.open), color = up ? '#2e8b57' : '#c0392b';
    const top = Y(Math.max(Number(c.open), Number(c.close))), bottom = Y(Math.min(Number(c.open), Number(c.close)));
    return `<line x1="${x}" y1="${Y(Number(c.high))}" x2="${x}" y2="${Y(Number(c.low))}" stroke="${color}"/><rect x="${x - Math.min(6, step / 3)}" y="${top}" width="${Math.min(12, (2 * step) / 3)}" height="${Math.max(2, bottom - top)}" fill="${color}"/>`;
  }).join('') + `<text x="2" y="14">¥${decimal(BigInt(Math.round(hi)), 2)}</text><text x="2" y="${H - B}">¥${decimal(BigInt(Math.round(lo)), 2)}</text>`
    + `<text x="${W - 4}" y="${H - 4}" text-anchor="end">${esc(when(candles[0].start_ns))} to ${esc(when(candles[n - 1].start_ns).slice(11))}</text>`);
}

/** Used against granted per quota, with the 80% and 100% alert thresholds marked. */
function quotaChart(quotas) {
  if (!quotas.length) return '<p class="hint">no quota yet</p>';
  const W = 460, row = 24, L = 90, span = W - L - 70;
  return svg(W, quotas.length * row + 8, quotas.map((q, i) => {
    const granted = Number(q.granted) || 1, used = Math.min(Number(q.used) / granted, 1), y = i * row + 4;
    return `<text x="2" y="${y + 13}">quota ${esc(String(q.quota_id).slice(-6))}</text><rect x="${L}" y="${y}" width="${span}" height="${row - 8}" fill="#e6ebf0"/>`
      + `<rect x="${L}" y="${y}" width="${used * span}" height="${row - 8}" fill="${used >= 0.8 ? '#c0392b' : '#1f6fb2'}"/>`
      + `<line x1="${L + 0.8 * span}" y1="${y - 2}" x2="${L + 0.8 * span}" y2="${y + row - 6}" stroke="#e67e22" stroke-dasharray="3,2"/>`
      + `<text x="${L + span + 4}" y="${y + 13}">${(used * 100).toFixed(1)}% used</text>`;
  }).join(''));
}

// ---------- start ----------

document.querySelectorAll('#views button').forEach((button) => button.addEventListener('click', () => showView(button.dataset.view)));
initKeys();
initSme();
initInstitution();
initGovernment();
initAuditor();
showView(location.hash.slice(1) || 'sme');
setInterval(refresh, POLL_MS);
window.cbankConsole = { state, refresh }; // for the browser tests and the curious
