// xenplug console page. Plain JavaScript, no framework, no build step, nothing loaded from
// elsewhere (the server's CSP is default-src 'self').
//
// It reads the tracker's tree through the console server (GET /api/tree), follows the event
// feed (GET /api/events?since=N, a long poll) and fetches the tree again after each batch of
// events, updating the DOM in place so that what is expanded, typed or shown stays. With
// several sources (a tracker and the console's own discovery) the tree is their merged one and
// `since` is the opaque `cursor` the server hands out with the tree and each batch. Every
// string that came from a device is inserted as text (textContent / text nodes), never as
// markup: a VM's name cannot become HTML.
//
// At fleet size (10,000 VMs) only what is open is built: a hypervisor's VMs when it is
// expanded (or when a search finds at most VMS_SHOWN VMs in all), at most VMS_SHOWN of them with
// a button for more,
// and a VM's action forms when it is expanded. Hypervisors start collapsed. The search box
// keeps the VMs whose name, UUID, tenant or run state contains every word typed; the counts
// per run state in the header are buttons that search for that state.
//
// When the server has an access file (`console serve --access`), the page opens on a sign-in
// form: the token is kept in this tab's sessionStorage (never a cookie, so no other site can
// make the browser send it) and sent as `Authorization: Bearer` with every request. Actions the
// signed-in role may not call are shown disabled; the server still decides, and its 401 or 403
// is shown inline.
'use strict';

const EVENTS_KEPT = 60;
const VMS_SHOWN = 200; // VMs of one list built at once; "Show more" adds as many again
const SEARCH_DELAY_MS = 120;
const TOKEN_KEY = 'xenplug-token';
const RETRY_FIRST_MS = 1000;
const RETRY_MAX_MS = 10000;

const state = {
  expanded: new Set(), // 'h:<uuid>' and 'v:<uuid>'
  hosts: new Map(), // host uuid -> entry
  vms: new Map(), // vm uuid -> entry
  results: new Map(), // action key -> the element shown in its result box
  names: new Map(), // uuid -> name, for the event list
  lifecycle: null, // DomainControl description from the server
  hypervisor: null, // Hypervisor service description from the server
  lastSeq: 0,
  cursor: null, // several sources: what to send as since= next
  stale: false, // several sources: the cursor is to be taken from a fresh tree
  loaded: false,
  refreshing: null,
  refreshAgain: false,
  identity: null, // {name, role} when signed in; null when the server needs no sign-in
  doc: null, // the last tree, rendered again when the search changes
  words: [], // the search, lower-cased words
  shown: new Map(), // list key ('h:<uuid>' or 'unplaced') -> VMs built in it
  openFound: false, // the search found few enough VMs to show them all at once
};

// ---- small helpers ---------------------------------------------------------------------------

const $ = (selector) => document.querySelector(selector);
const str = (value) => (typeof value === 'string' ? value : '');
const arr = (value) => (Array.isArray(value) ? value : []);
const num = (value) => (typeof value === 'number' && Number.isFinite(value) ? value : 0);

/** The headers of a request to the server: the token, when signed in, and `extra`. */
function headers(extra) {
  const token = sessionStorage.getItem(TOKEN_KEY);
  return Object.assign(token ? { Authorization: 'Bearer ' + token } : {}, extra || {});
}

/** Whether the signed-in role may call an action with these semantics, of this kind
 * ('lifecycle', 'hypervisor' or 'owner'); the server decides in the end. */
function allowed(semantics, kind) {
  if (!state.identity) return true;
  const role = str(state.identity.role);
  if (role === 'admin') return true;
  if (role === 'operator') return !semantics.includes('destructive');
  if (role.startsWith('tenant:')) return kind !== 'hypervisor';
  return false;
}

/** An element with attributes, listeners and children; strings become text nodes. */
function el(tag, props, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'class') node.className = value;
    else if (key === 'text') node.textContent = value;
    else if (key.startsWith('on') && typeof value === 'function') {
      node.addEventListener(key.slice(2), value);
    } else node.setAttribute(key, value === true ? '' : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child); // a string is appended as a text node
  }
  return node;
}

/** Puts `node` at position `index` of `container` (moving it only when needed). */
function place(container, node, index) {
  const at = container.children[index];
  if (at !== node) container.insertBefore(node, at || null);
}

function setText(node, text) {
  if (node.textContent !== text) node.textContent = text;
}

/** `urn:domain:service:Echo:1` -> `Echo:1`. */
function shortType(type) {
  const parts = type.split(':');
  return parts.length >= 2 ? parts.slice(-2).join(':') : type;
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function setStatus(kind, text) {
  const status = $('#status');
  status.dataset.state = kind;
  setText(status, text);
}

/** The sources of a merged tree or events batch, in the header; hidden with one source. */
function showSources(sources) {
  const list = $('#sources');
  const known = arr(sources).filter((s) => s && str(s.api));
  list.hidden = known.length < 2;
  list.replaceChildren(...known.map((s) => {
    const error = str(s.error);
    return el('span', {
      class: 'source',
      'data-source': str(s.api),
      'data-state': error ? 'down' : 'ok',
      title: error || 'journal #' + num(s.last_seq),
    }, str(s.api));
  }));
}

function showProblem(text) {
  const problem = $('#problem');
  problem.hidden = !text;
  setText(problem, text || '');
}

// ---- expand and collapse ---------------------------------------------------------------------

function setExpanded(entry, open) {
  if (open) state.expanded.add(entry.key);
  else state.expanded.delete(entry.key);
  const was = entry.node.getAttribute('aria-expanded') === 'true';
  entry.node.setAttribute('aria-expanded', String(open));
  entry.toggle.setAttribute('aria-expanded', String(open));
  entry.toggle.setAttribute('aria-label', (open ? 'Collapse ' : 'Expand ') + entry.label);
  // What is built only when open is built (or dropped) now.
  if (open !== was && entry.onToggle) entry.onToggle(open);
}

/** A header row that toggles its node when clicked (unless text is being selected). */
function toggleRow(entry, ...cells) {
  const row = el('div', { class: 'row' }, entry.toggle, ...cells);
  row.addEventListener('click', () => {
    if (String(window.getSelection ? window.getSelection() : '') !== '') return;
    setExpanded(entry, entry.node.getAttribute('aria-expanded') !== 'true');
  });
  return row;
}

function newEntry(key, kind, attributes) {
  const entry = {
    key,
    label: '',
    toggle: el('button', { type: 'button', class: 'toggle' }),
    children: el('div', { class: 'children' }),
    node: null,
    signature: null,
  };
  entry.node = el('div', { class: 'node ' + kind, ...attributes });
  return entry;
}

// ---- hypervisors -----------------------------------------------------------------------------

function makeHost(uuid) {
  const entry = newEntry('h:' + uuid, 'host', { 'data-host': uuid });
  entry.vms = [];
  entry.onToggle = () => renderHostVms(entry, new Set());
  entry.name = el('span', { class: 'name' });
  entry.state = el('span', { class: 'badge' });
  entry.count = el('span', { class: 'meta' });
  entry.addresses = el('span', { class: 'meta' });
  entry.list = el('div', { class: 'tree vm-list' });
  entry.more = el('button', { type: 'button', class: 'plain more', hidden: true });
  entry.more.addEventListener('click', () => {
    state.shown.set(entry.key, (state.shown.get(entry.key) || VMS_SHOWN) + VMS_SHOWN);
    renderHostVms(entry, new Set());
  });
  entry.empty = el('p', { class: 'empty', text: 'No VMs.' });
  entry.node.append(
    toggleRow(entry, entry.name, entry.state, entry.count, entry.addresses,
      el('span', { class: 'uuid', text: uuid })),
    entry.children,
  );
  entry.target = { kind: 'hypervisors', uuid, name: '' };
  if (state.hypervisor) {
    entry.children.append(el('div', { class: 'host-service' },
      serviceBlock(entry.target, state.hypervisor, 'Hypervisor', 'hypervisor')));
  }
  entry.children.append(entry.list, entry.more, entry.empty);
  setExpanded(entry, state.expanded.has(entry.key));
  return entry;
}

/** Updates a hypervisor's row; `vms` are those the search keeps, of `all`. */
function updateHost(entry, host, vms, all) {
  const name = str(host.name) || '(no name)';
  entry.label = name;
  entry.target.name = name;
  entry.vms = vms;
  setText(entry.name, name);
  const hostState = str(host.state) || 'unknown';
  setText(entry.state, hostState);
  entry.state.className = 'badge ' + hostState.replace(/[^a-z-]/g, '');
  const count = all.length === 1 ? '1 VM' : all.length.toLocaleString('en') + ' VMs';
  setText(entry.count, vms.length === all.length ? count : vms.length.toLocaleString('en') + ' of ' + count);
  setText(entry.addresses, arr(host.addresses).map(str).filter(Boolean).join(', '));
  entry.empty.hidden = vms.length > 0;
  // A search shows what it found without a click; clearing it closes again what was closed.
  const open = state.expanded.has(entry.key) || (state.openFound && vms.length > 0);
  entry.node.setAttribute('aria-expanded', String(open));
  entry.toggle.setAttribute('aria-expanded', String(open));
  entry.toggle.setAttribute('aria-label', (open ? 'Collapse ' : 'Expand ') + name);
}

/** Builds a hypervisor's VM list when it is open, drops it when it is closed. */
function renderHostVms(entry, seen) {
  const open = entry.node.getAttribute('aria-expanded') === 'true';
  const vms = open ? entry.vms : [];
  renderVms(entry.list, entry.more, entry.key, vms, true, seen);
}

// ---- virtual machines ------------------------------------------------------------------------

function makeVm(uuid) {
  const entry = newEntry('v:' + uuid, 'vm', { 'data-vm': uuid });
  entry.onToggle = (open) => renderVmServices(entry, open);
  entry.name = el('span', { class: 'name' });
  entry.runState = el('span', { class: 'badge', 'data-field': 'run-state' });
  entry.tenant = el('span', { class: 'badge tenant' });
  entry.node.append(
    toggleRow(entry, entry.name, entry.runState, entry.tenant,
      el('span', { class: 'uuid', text: uuid })),
    entry.children,
  );
  setExpanded(entry, state.expanded.has(entry.key));
  return entry;
}

function updateVm(entry, vm, placed) {
  const uuid = str(vm.uuid);
  const name = str(vm.name) || '(no name)';
  entry.label = name;
  entry.vmName = name;
  setText(entry.name, name);
  const runState = str(vm.run_state) || 'unknown';
  setText(entry.runState, runState);
  entry.runState.className = 'badge ' + runState.replace(/[^a-z-]/g, '');
  const tenant = str(vm.tenant);
  entry.tenant.hidden = !tenant;
  setText(entry.tenant, tenant ? 'tenant ' + tenant : '');
  entry.vm = vm;
  entry.placed = placed;
  setExpanded(entry, state.expanded.has(entry.key));
  renderVmServices(entry, state.expanded.has(entry.key));
}

/** Builds a VM's action forms when it is open (dropped when closed), and rebuilds them only
 * when what they offer changed, so typing and results stay. */
function renderVmServices(entry, open) {
  if (!open) {
    entry.signature = null;
    entry.children.replaceChildren();
    return;
  }
  const { vm, placed } = entry;
  if (!vm) return;
  const uuid = str(vm.uuid);
  const name = entry.vmName;
  const signature = JSON.stringify([vm.services, placed, Boolean(state.lifecycle)]);
  if (signature === entry.signature) return;
  entry.signature = signature;
  const blocks = [];
  if (placed && state.lifecycle) {
    blocks.push(serviceBlock({ kind: 'vms', uuid, name }, state.lifecycle, 'Lifecycle', 'lifecycle'));
  }
  for (const service of arr(vm.services)) {
    blocks.push(serviceBlock({ kind: 'vms', uuid, name }, service, null, 'owner'));
  }
  if (blocks.length === 0) blocks.push(el('p', { class: 'empty', text: 'No services advertised.' }));
  entry.children.replaceChildren(...blocks);
}

/** Renders the first of `vms` into `container` (list `key`: VMS_SHOWN, or more once asked),
 * reusing (and moving) the VM entries already built; `more` offers the rest. */
function renderVms(container, more, key, vms, placed, seen) {
  const limit = state.shown.get(key) || VMS_SHOWN;
  let index = 0;
  for (const vm of vms) {
    if (index >= limit) break;
    const uuid = str(vm.uuid);
    if (!uuid || seen.has(uuid)) continue;
    seen.add(uuid);
    let entry = state.vms.get(uuid);
    if (!entry) {
      entry = makeVm(uuid);
      state.vms.set(uuid, entry);
      if (state.loaded) entry.node.classList.add('fresh');
    }
    updateVm(entry, vm, placed);
    place(container, entry.node, index);
    index += 1;
  }
  while (container.children.length > index) container.lastElementChild.remove();
  const rest = vms.length - index;
  more.hidden = rest <= 0;
  setText(more, 'Show ' + Math.min(rest, VMS_SHOWN).toLocaleString('en') + ' more of '
    + rest.toLocaleString('en'));
}

/** Whether the search keeps `vm` (every word in its name, UUID, tenant or run state). */
function kept(vm) {
  if (state.words.length === 0) return true;
  const text = [vm.name, vm.uuid, vm.tenant, vm.run_state].map(str).join(' ').toLowerCase();
  return state.words.every((word) => text.includes(word));
}

/** The VMs per run state of every VM in the tree, as buttons that search for that state. */
function showCounts(all) {
  const counts = new Map();
  for (const vm of all) {
    const runState = str(vm.run_state) || 'unknown';
    counts.set(runState, (counts.get(runState) || 0) + 1);
  }
  const list = $('#counts');
  list.replaceChildren(...[...counts.entries()].sort((a, b) => b[1] - a[1]).map(([runState, n]) => {
    const button = el('button', {
      type: 'button',
      class: 'count badge ' + runState.replace(/[^a-z-]/g, ''),
      'data-state': runState,
      title: 'show the ' + runState + ' VMs',
    }, runState + ' ' + n.toLocaleString('en'));
    button.addEventListener('click', () => {
      $('#search').value = runState;
      search();
    });
    return button;
  }));
}

/** Applies what the search box holds to the tree already fetched. */
function search() {
  const words = $('#search').value.toLowerCase().split(/\s+/).filter(Boolean);
  if (JSON.stringify(words) === JSON.stringify(state.words)) return;
  state.words = words;
  state.shown.clear();
  if (state.doc) renderTree(state.doc);
}

// ---- services and action forms ---------------------------------------------------------------

/** The arguments of an action as the tree or a description gives them; null if unknown. */
function argumentsOf(action) {
  const list = Array.isArray(action.arguments) ? action.arguments
    : Array.isArray(action.inputs) ? action.inputs : null;
  if (list === null) return null;
  return list
    .map((a) => (typeof a === 'string'
      ? { name: a, direction: 'in', type: '', allowed: [] }
      : {
        name: str(a && a.name),
        direction: (str(a && a.direction) || 'in').toLowerCase(),
        type: (str(a && (a.type || a.data_type || a.dataType)) || '').toLowerCase(),
        allowed: arr(a && (a.allowed || a.allowed_values || a.allowedValues)).map(str),
      }))
    .filter((a) => a.name);
}

const INTEGER_RANGES = {
  ui1: [0, 255], ui2: [0, 65535], ui4: [0, 4294967295], ui8: [0, null],
  i1: [-128, 127], i2: [-32768, 32767], i4: [-2147483648, 2147483647], i8: [null, null],
  int: [-2147483648, 2147483647],
};
const FLOATS = new Set(['r4', 'r8', 'number', 'float', 'fixed.14.4']);

/** One typed input for an in-argument; `read()` gives the value to send. */
function field(argument) {
  const { name, type, allowed } = argument;
  let input;
  let read = () => input.value;
  if (allowed.length > 0) {
    input = el('select', { name }, allowed.map((value) => el('option', { value, text: value })));
  } else if (type === 'boolean') {
    input = el('input', { type: 'checkbox', name });
    read = () => (input.checked ? '1' : '0');
  } else if (type in INTEGER_RANGES) {
    const [min, max] = INTEGER_RANGES[type];
    input = el('input', { type: 'number', name, step: '1', min, max, required: true });
  } else if (FLOATS.has(type)) {
    input = el('input', { type: 'number', name, step: 'any', required: true });
  } else {
    input = el('input', { type: 'text', name, autocomplete: 'off', spellcheck: 'false' });
  }
  input.setAttribute('data-arg', name);
  const label = el('label', { title: type ? name + ' (' + type + ')' : name }, name, input);
  return { label, read: () => [[name, read()]] };
}

/** Free NAME=VALUE pairs, for an action whose arguments the tracker does not describe. */
function freePairs() {
  const rows = el('span', { class: 'fields' });
  const pairs = [];
  const add = () => {
    const key = el('input', { type: 'text', placeholder: 'argument', 'data-free': 'name', autocomplete: 'off' });
    const value = el('input', { type: 'text', placeholder: 'value', 'data-free': 'value', autocomplete: 'off' });
    pairs.push([key, value]);
    rows.append(el('span', { class: 'pair' }, key, value));
  };
  add();
  const more = el('button', { type: 'button', class: 'plain', title: 'another argument', text: '+' });
  more.addEventListener('click', add);
  const read = () => pairs
    .map(([key, value]) => [key.value.trim(), value.value])
    .filter(([key]) => key && key !== 'service' && key !== 'action');
  return { label: el('span', { class: 'fields' }, rows, more), read };
}

/** A service's actions: those without inputs as one row of buttons sharing a result line,
 * those with inputs (or with arguments unknown) as one form each. */
function serviceBlock(target, service, title, kind) {
  const type = str(service.type);
  const actions = arr(service.actions).filter((a) => str(a && a.name));
  const bare = (a) => {
    const args = argumentsOf(a);
    return args !== null && args.every((x) => x.direction === 'out');
  };
  const buttons = actions.filter(bare);
  const forms = actions.filter((a) => !bare(a));
  const block = el('div', { class: 'service', 'data-service': type },
    el('div', { class: 'service-head' },
      el('span', { class: 'name', text: title || shortType(type) }),
      el('span', { class: 'uuid', text: type })));
  if (buttons.length > 0) {
    const shared = resultBox(target.uuid + '|' + type);
    block.append(el('div', { class: 'actions compact' },
      buttons.map((action) => actionForm(target, type, action, shared, kind))), shared.node);
  }
  if (forms.length > 0) {
    block.append(el('div', { class: 'actions' },
      forms.map((action) => actionForm(target, type, action, null, kind))));
  }
  if (actions.length === 0) block.append(el('p', { class: 'empty', text: 'No actions.' }));
  return block;
}

/** The element showing an action's outcome, restored from `state.results` after a rebuild. */
function resultBox(key) {
  const node = el('div', { class: 'result', 'aria-live': 'polite' });
  const kept = state.results.get(key);
  if (kept) node.append(kept);
  return {
    node,
    show(content) {
      if (content) state.results.set(key, content);
      else state.results.delete(key);
      node.replaceChildren(...(content ? [content] : []));
    },
  };
}

function actionForm(target, type, action, shared, kind) {
  const name = str(action.name);
  const semantics = arr(action.semantics).map(str);
  const destructive = semantics.includes('destructive');
  const ask = destructive || semantics.includes('confirm');
  const args = argumentsOf(action);
  const inputs = args === null ? null : args.filter((a) => a.direction !== 'out');
  const fields = inputs === null ? [freePairs()] : inputs.map(field);
  const result = shared || resultBox(target.uuid + '|' + type + '|' + name);
  const permitted = allowed(semantics, kind || 'owner');
  const button = el('button', {
    type: 'submit',
    class: destructive ? 'call danger' : 'call',
    title: permitted
      ? (semantics.length ? semantics.join(', ') : null)
      : 'the role ' + str(state.identity && state.identity.role) + ' may not call ' + name,
    text: fields.length === 0 ? name : 'Call',
  });
  button.disabled = !permitted;
  if (!permitted) button.setAttribute('data-not-allowed', '');
  const form = el('form', { class: 'action', 'data-action': name, autocomplete: 'off' });
  if (fields.length > 0) form.append(el('span', { class: 'name', text: name }));
  for (const f of fields) form.append(f.label);
  form.append(button);
  if (fields.length > 0) {
    for (const s of semantics.filter((x) => x === 'destructive' || x === 'confirm')) {
      form.append(el('span', { class: 'badge ' + s, text: s }));
    }
  }
  if (!shared) form.append(result.node);
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const pairs = [['service', type], ['action', name]];
    for (const f of fields) pairs.push(...f.read());
    const go = () => call(target, name, pairs, button, result);
    if (!ask) {
      go();
      return;
    }
    const yes = el('button', { type: 'button', class: 'call', 'data-confirm': 'yes', text: name });
    const no = el('button', { type: 'button', class: 'plain', 'data-confirm': 'no', text: 'Cancel' });
    yes.addEventListener('click', go);
    no.addEventListener('click', () => result.show(null));
    result.show(el('div', { class: 'confirm', role: 'alertdialog', 'data-confirm-for': name },
      el('span', { text: name + ' ' + target.name + '? '
        + (destructive ? 'This is destructive.' : 'Please confirm.') }),
      yes, no));
    yes.focus();
  });
  return form;
}

function encodeForm(pairs) {
  return pairs.map(([k, v]) => encodeURIComponent(k) + '=' + encodeURIComponent(v)).join('&');
}

/** What an answer of the relay says: ok, title, outputs. */
function describe(name, status, doc) {
  const error = doc && doc.error;
  if (status === 200 && doc && doc.outputs && typeof doc.outputs === 'object') {
    return { ok: true, title: name + ' done', outputs: Object.entries(doc.outputs) };
  }
  if (error && typeof error === 'object') {
    const description = str(error.description) || 'no description';
    if (typeof error.code === 'number') {
      return { ok: false, title: 'UPnP error ' + error.code + ': ' + description };
    }
    return { ok: false, title: name + ' failed (HTTP ' + status + '): ' + description };
  }
  if (typeof error === 'string') {
    return { ok: false, title: name + ' refused (HTTP ' + status + '): ' + error };
  }
  return { ok: false, title: name + ': unexpected answer (HTTP ' + status + ')' };
}

async function call(target, name, pairs, button, result) {
  button.disabled = true;
  result.show(el('div', { class: 'outcome pending', text: name + ': calling…' }));
  const started = performance.now();
  let outcome;
  try {
    const response = await fetch('/api/' + target.kind + '/' + encodeURIComponent(target.uuid) + '/actions', {
      method: 'POST',
      headers: headers({ 'Content-Type': 'application/x-www-form-urlencoded' }),
      body: encodeForm(pairs),
      cache: 'no-store',
    });
    const text = await response.text();
    let doc = null;
    try {
      doc = JSON.parse(text);
    } catch (_) {
      doc = null;
    }
    outcome = describe(name, response.status, doc);
  } catch (error) {
    outcome = { ok: false, title: name + ': the console server did not answer (' + error.message + ')' };
  } finally {
    button.disabled = button.hasAttribute('data-not-allowed');
  }
  const took = Math.round(performance.now() - started);
  const node = el('div', { class: 'outcome ' + (outcome.ok ? 'ok' : 'error'), 'data-outcome': outcome.ok ? 'ok' : 'error' },
    el('strong', { text: outcome.title }),
    el('span', { class: 'when', text: new Date().toLocaleTimeString() + ' · ' + took + ' ms' }));
  if (outcome.outputs && outcome.outputs.length > 0) {
    node.append(el('dl', {}, outcome.outputs.map(([key, value]) => [
      el('dt', { text: key }),
      el('dd', { 'data-output': key, text: typeof value === 'string' ? value : JSON.stringify(value) }),
    ])));
  }
  result.show(node);
}

// ---- the tree --------------------------------------------------------------------------------

function renderTree(doc) {
  const provider = Array.isArray(doc.hypervisors);
  if (!provider && !Array.isArray(doc.vms)) {
    throw new Error('the tracker\'s tree has neither "hypervisors" nor "vms"');
  }
  state.doc = doc;
  const hosts = arr(doc.hypervisors);
  const unplacedAll = provider ? arr(doc.devirtualized) : arr(doc.vms);
  const unplaced = unplacedAll.filter(kept);
  const seenVms = new Set();
  const every = [...unplacedAll];

  $('#hosts-section').hidden = !provider;
  const hostList = $('#hosts');
  const seenHosts = new Set();
  const listed = [];
  let matched = 0;
  for (const host of hosts) {
    const uuid = str(host.uuid);
    if (!uuid || seenHosts.has(uuid)) continue;
    seenHosts.add(uuid);
    state.names.set(uuid, str(host.name));
    const all = arr(host.vms);
    for (const vm of all) {
      state.names.set(str(vm.uuid), str(vm.name));
      every.push(vm);
    }
    const vms = all.filter(kept);
    matched += vms.length;
    listed.push({ uuid, host, all, vms });
  }
  // A search that finds few VMs shows them at once; one that finds many lists the
  // hypervisors holding them, to be opened.
  state.openFound = state.words.length > 0 && matched <= VMS_SHOWN;
  let index = 0;
  for (const { uuid, host, all, vms } of listed) {
    let entry = state.hosts.get(uuid);
    if (!entry) {
      entry = makeHost(uuid);
      state.hosts.set(uuid, entry);
    }
    updateHost(entry, host, vms, all);
    renderHostVms(entry, seenVms);
    // While searching, a hypervisor without a VM found is not shown.
    entry.node.hidden = state.words.length > 0 && vms.length === 0;
    place(hostList, entry.node, index);
    index += 1;
  }
  for (const [uuid, entry] of state.hosts) {
    if (!seenHosts.has(uuid)) {
      entry.node.remove();
      state.hosts.delete(uuid);
    }
  }
  $('#hosts-empty').hidden = !provider || index > 0;
  for (const vm of unplacedAll) state.names.set(str(vm.uuid), str(vm.name));

  renderVms($('#vms'), $('#vms-more'), 'unplaced', unplaced, false, seenVms);
  for (const [uuid, entry] of state.vms) {
    if (!seenVms.has(uuid)) {
      entry.node.remove();
      state.vms.delete(uuid);
    }
  }
  $('#vms-section').hidden = provider && unplaced.length === 0;
  setText($('#vms-title'), provider ? 'De-virtualized' : 'Your virtual machines');
  setText($('#vms-hint'), provider
    ? 'VMs that advertise themselves but that no hypervisor places: lifecycle actions cannot reach them.'
    : 'The tracker shows this network only its own tenant\'s VMs.');

  const undescribed = provider ? arr(doc.undescribed) : [];
  $('#undescribed-section').hidden = undescribed.length === 0;
  $('#undescribed tbody').replaceChildren(...undescribed.map((d) => el('tr', {},
    el('td', { text: str(d.network) }), el('td', { text: str(d.udn) }),
    el('td', { text: str(d.address) }), el('td', { text: str(d.reason) }))));

  const vmCount = every.length;
  setText($('#summary'), (provider ? hosts.length.toLocaleString('en') + (hosts.length === 1 ? ' hypervisor · ' : ' hypervisors · ') : '')
    + vmCount.toLocaleString('en') + (vmCount === 1 ? ' VM' : ' VMs') + ' · journal #' + num(doc.last_seq));
  showCounts(every);
  const found = $('#found');
  found.hidden = state.words.length === 0;
  setText(found, (matched + unplaced.length).toLocaleString('en') + ' found');
  state.loaded = true;
}

async function fetchJson(path) {
  const response = await fetch(path, { cache: 'no-store', headers: headers() });
  if (response.status === 401 && state.identity) {
    // The token was withdrawn (or the server restarted with another access file).
    signOut();
  }
  const text = await response.text();
  let doc;
  try {
    doc = JSON.parse(text);
  } catch (_) {
    throw new Error(path + ': HTTP ' + response.status + ', not JSON');
  }
  if (!response.ok) {
    const error = doc && doc.error;
    const why = typeof error === 'string' ? error : str(error && error.description);
    throw new Error(why || path + ': HTTP ' + response.status);
  }
  return doc;
}

/** Fetches and renders the tree; calls made meanwhile are folded into one more fetch. */
async function refreshTree() {
  if (state.refreshing) {
    state.refreshAgain = true;
    return state.refreshing;
  }
  state.refreshing = (async () => {
    do {
      state.refreshAgain = false;
      const doc = await fetchJson('/api/tree');
      renderTree(doc);
      showProblem(null);
      state.lastSeq = Math.max(state.lastSeq, num(doc.last_seq));
      if (typeof doc.cursor === 'string') {
        // Several sources: the tree's cursor only to start from (a batch's is newer).
        if (state.cursor === null) state.cursor = doc.cursor;
        showSources(doc.sources);
      }
    } while (state.refreshAgain);
  })();
  try {
    await state.refreshing;
  } finally {
    state.refreshing = null;
  }
  return undefined;
}

// ---- events ----------------------------------------------------------------------------------

function showEvents(events) {
  const list = $('#events');
  for (const event of events) {
    const subject = str(event.subject);
    const name = state.names.get(subject);
    const details = event.details && typeof event.details === 'object'
      ? Object.entries(event.details).map(([k, v]) => k + '=' + (typeof v === 'string' ? v : JSON.stringify(v))).join(' ')
      : '';
    const time = num(event.time) ? new Date(num(event.time) * 1000).toLocaleTimeString() : '';
    list.prepend(el('li', { 'data-kind': str(event.kind) },
      el('span', { class: 'seq', text: String(num(event.seq)) }),
      el('span', { class: 'time', text: time }),
      el('span', { class: 'kind', text: str(event.kind) }),
      el('span', { class: 'source', text: str(event.source) }),
      el('span', { text: name || '' }),
      el('span', { class: 'subject', text: subject + (details ? '  ' + details : '') })));
  }
  while (list.children.length > EVENTS_KEPT) list.lastElementChild.remove();
}

/** Follows the event feed for ever: each batch of new events fetches the tree again. */
async function follow() {
  let retry = RETRY_FIRST_MS;
  for (;;) {
    try {
      if (!state.loaded || state.stale) {
        await refreshTree();
        state.stale = false;
      }
      if (state.cursor !== null) {
        const page = await fetchJson('/api/events?since=' + encodeURIComponent(state.cursor));
        setStatus('live', 'live');
        showProblem(null);
        retry = RETRY_FIRST_MS;
        if (typeof page.cursor !== 'string') throw new Error('the events answer has no cursor');
        state.cursor = page.cursor;
        showSources(page.sources);
        const events = arr(page.events);
        if (events.length > 0 || page.reset === true) {
          await refreshTree();
          showEvents(events);
        }
        continue;
      }
      const since = state.lastSeq;
      const page = await fetchJson('/api/events?since=' + since);
      setStatus('live', 'live');
      showProblem(null);
      retry = RETRY_FIRST_MS;
      const events = arr(page.events).filter((e) => num(e && e.seq) > since);
      const last = num(page.last_seq);
      if (last < since) {
        // A tracker on another journal: start again from its end.
        state.lastSeq = last;
        await refreshTree();
        continue;
      }
      state.lastSeq = Math.max(since, last);
      if (events.length > 0) {
        await refreshTree();
        showEvents(events); // after the tree, so that new subjects have their names
      }
    } catch (error) {
      if (state.cursor !== null) {
        // The server may have restarted with other sources: start again from a fresh tree.
        state.cursor = null;
        state.stale = true;
      }
      setStatus(state.loaded ? 'reconnecting' : 'down', state.loaded ? 'reconnecting…' : 'tracker unreachable');
      showProblem('The tracker could not be reached through the console: ' + error.message);
      await sleep(retry);
      retry = Math.min(retry * 2, RETRY_MAX_MS);
    }
  }
}

// ---- start -----------------------------------------------------------------------------------

/** Opens or closes every hypervisor (closing also closes every VM). */
function expandAll(open) {
  const entries = open ? [...state.hosts.values()] : [...state.vms.values(), ...state.hosts.values()];
  for (const entry of entries) setExpanded(entry, open);
}

/** Forgets the token and shows the sign-in form again. */
function signOut() {
  sessionStorage.removeItem(TOKEN_KEY);
  window.location.reload();
}

/** Who the server says the page is signed in as: {name, role}, {name: null} when it needs no
 * sign-in, or null when it asks for one (401, 429). */
async function whoami() {
  const response = await fetch('/api/whoami', { cache: 'no-store', headers: headers() });
  let doc = null;
  try {
    doc = JSON.parse(await response.text());
  } catch (_) {
    doc = null;
  }
  if (response.ok && doc) return doc;
  if (response.status === 401 || response.status === 429) {
    return { refused: str(doc && doc.error) || 'HTTP ' + response.status };
  }
  throw new Error('/api/whoami: HTTP ' + response.status);
}

/** Resolves once the page may read: at once without an access file, else after a sign-in. */
async function signIn() {
  let who = await whoami();
  while (who.refused !== undefined) {
    const had = sessionStorage.getItem(TOKEN_KEY);
    sessionStorage.removeItem(TOKEN_KEY);
    $('#sign-in').hidden = false;
    setStatus('down', 'signed out');
    const problem = $('#sign-in-problem');
    problem.hidden = !had;
    setText(problem, had ? 'Refused: ' + who.refused : '');
    $('#token').focus();
    await new Promise((resolve) => {
      $('#sign-in-form').addEventListener('submit', (event) => {
        event.preventDefault();
        sessionStorage.setItem(TOKEN_KEY, $('#token').value.trim());
        resolve();
      }, { once: true });
    });
    who = await whoami();
  }
  $('#sign-in').hidden = true;
  if (who.name) {
    state.identity = { name: str(who.name), role: str(who.role) };
    const badge = $('#who');
    setText(badge, state.identity.name + ' · ' + state.identity.role);
    badge.setAttribute('data-role', state.identity.role);
    badge.hidden = false;
    $('#sign-out').hidden = false;
  }
}

async function start() {
  $('#expand-all').addEventListener('click', () => expandAll(true));
  $('#collapse-all').addEventListener('click', () => expandAll(false));
  $('#sign-out').addEventListener('click', signOut);
  let typing = null;
  $('#search').addEventListener('input', () => {
    clearTimeout(typing);
    typing = setTimeout(search, SEARCH_DELAY_MS);
  });
  $('#search-form').addEventListener('submit', (event) => {
    event.preventDefault();
    clearTimeout(typing);
    search();
  });
  await signIn();
  // Without them the owners' services are still offered.
  [state.lifecycle, state.hypervisor] = await Promise.all(['/domain-control.json', '/hypervisor.json']
    .map((path) => fetchJson(path).catch(() => null)));
  follow();
}

document.addEventListener('DOMContentLoaded', start);
