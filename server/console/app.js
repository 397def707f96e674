// The office console: a single page over the JSON API. No framework and no build step; the DOM
// is built with h() (never from HTML strings, so no report text can become markup) and charts are
// inline SVG.
'use strict';
(() => {
  const I18N = window.GS_I18N;
  const LANG_KEY = 'gridsync.console.lang';
  const REFRESH_KEY = 'gridsync.console.refresh';
  const DEVICE_KEY = 'gridsync.console.device.';
  const SVG_NS = 'http://www.w3.org/2000/svg';

  let lang = localStorage.getItem(LANG_KEY) === 'en' ? 'en' : 'zh';

  function t(key, vars) {
    let text = I18N[lang][key];
    if (text === undefined) {
      console.error('missing label', lang, key);
      text = key;
    }
    return vars ? text.replace(/\{(\w+)\}/g, (_, k) => (vars[k] ?? '')) : text;
  }
  const label = (l) => (l ? l[lang] || l.zh : '');

  // ---- DOM -----------------------------------------------------------------------------------

  function build(el, attrs, children) {
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (key.startsWith('on')) el.addEventListener(key.slice(2), value);
      else if (key === 'class') el.setAttribute('class', value);
      else el.setAttribute(key, value === true ? '' : value);
    }
    for (const child of children.flat(Infinity)) {
      if (child === null || child === undefined || child === false) continue;
      el.append(child instanceof Node ? child : String(child));
    }
    return el;
  }
  const h = (tag, attrs, ...children) => build(document.createElement(tag), attrs, children);
  const s = (tag, attrs, ...children) => build(document.createElementNS(SVG_NS, tag), attrs, children);

  // ---- API and session -----------------------------------------------------------------------

  class ApiFailure extends Error {
    constructor(status, problem) {
      super(problem.detail || problem.title || `HTTP ${status}`);
      this.status = status;
      this.code = problem.code || '';
      // A refused form's problems, each with its place in a workbook when it has one.
      this.formProblems = problem.form_problems ?? [];
    }
  }

  const session = { access: null, timer: null, me: null };
  const cache = { root: null, ancestors: [], units: new Map(), schemas: new Map(), inService: new Set(), users: new Map() };
  let refreshing = null;

  async function request(method, path, body, retry = true) {
    const headers = {};
    if (session.access) headers.Authorization = `Bearer ${session.access}`;
    // A Blob (a form file) goes as it is, under its own media type; anything else as JSON.
    const raw = body instanceof Blob;
    if (body !== undefined) headers['Content-Type'] = raw ? body.type : 'application/json';
    const response = await fetch(path, {
      method,
      headers,
      body: body === undefined || raw ? body : JSON.stringify(body),
      cache: 'no-store',
      credentials: 'omit',
    });
    if (response.status === 401 && retry && !path.startsWith('/api/v1/auth/')) {
      if (await refresh()) return request(method, path, body, false);
      endSession(t('session_ended'));
    }
    if (!response.ok) {
      let problem = {};
      try {
        problem = await response.json();
      } catch {
        // Not problem+json (a proxy's page, say): the status says enough.
      }
      throw new ApiFailure(response.status, problem);
    }
    return response;
  }
  const getJson = async (path) => (await request('GET', path)).json();
  const send = async (method, path, body) => {
    const response = await request(method, path, body);
    return response.status === 204 ? null : response.json();
  };

  function adopt(tokens) {
    session.access = tokens.access_token;
    sessionStorage.setItem(REFRESH_KEY, tokens.refresh_token);
    clearTimeout(session.timer);
    // Renew before expiry, so no request meets an expired token.
    const lead = Math.min(60, tokens.expires_in / 5);
    session.timer = setTimeout(refresh, (tokens.expires_in - lead) * 1000);
  }

  // One refresh at a time: the refresh token is single use, and spending it twice revokes the
  // whole session.
  function refresh() {
    refreshing ??= (async () => {
      const token = sessionStorage.getItem(REFRESH_KEY);
      if (!token) return false;
      try {
        const response = await request('POST', '/api/v1/auth/refresh', { refresh_token: token }, false);
        adopt(await response.json());
        return true;
      } catch {
        sessionStorage.removeItem(REFRESH_KEY);
        return false;
      }
    })().finally(() => {
      refreshing = null;
    });
    return refreshing;
  }

  function randomId() {
    // crypto.randomUUID needs a secure context; an intranet server is often plain http.
    const bytes = crypto.getRandomValues(new Uint8Array(16));
    return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
  }

  // The console is a device of its user: one id per user and browser, kept in localStorage so
  // the devices page shows one entry per office PC rather than one per login.
  function deviceId(username, fresh) {
    const key = DEVICE_KEY + username;
    let id = localStorage.getItem(key);
    if (!id || fresh) {
      id = `console-${randomId()}`;
      localStorage.setItem(key, id);
    }
    return id;
  }

  async function login(username, password) {
    const attempt = async (fresh) =>
      (
        await request(
          'POST',
          '/api/v1/auth/login',
          { username, password, device_id: deviceId(username, fresh), device_name: t('device_name') },
          false,
        )
      ).json();
    let tokens;
    try {
      tokens = await attempt(false);
    } catch (e) {
      // A revoked browser registers anew, as a phone does after wiping itself; the password
      // was just checked again.
      if (e.code !== 'device_revoked') throw e;
      tokens = await attempt(true);
    }
    adopt(tokens);
    await loadSession();
  }

  async function loadSession() {
    const [me, org] = await Promise.all([getJson('/api/v1/me'), getJson('/api/v1/org'), loadSchemas()]);
    session.me = me;
    cache.root = org.root;
    cache.ancestors = org.ancestors;
    cache.units = new Map(org.units.map((u) => [u.id, u]));
    cache.users = new Map([[me.id, { display_name: me.display_name, username: me.username }]]);
    if (canListUsers()) {
      for await (const user of pages('/api/v1/users?limit=200')) cache.users.set(user.id, user);
    }
    connectLive();
  }

  // The kinds in force, which label reports, fields and filters; read again when a form is
  // published.
  async function loadSchemas() {
    const [schemas, catalogue] = await Promise.all([
      getJson('/api/v1/schemas'),
      getJson('/api/v1/schemas/catalogue'),
    ]);
    cache.schemas = new Map();
    for (const schema of schemas) {
      if (!cache.schemas.has(schema.kind)) cache.schemas.set(schema.kind, new Map());
      cache.schemas.get(schema.kind).set(schema.version, schema);
    }
    // Kinds with a published version: those whose every version is retired take no new reports.
    cache.inService = new Set(catalogue.entries.filter((e) => e.state === 'published').map((e) => e.kind));
  }

  async function* pages(path) {
    let cursor = null;
    do {
      const sep = path.includes('?') ? '&' : '?';
      const page = await getJson(cursor ? `${path}${sep}cursor=${encodeURIComponent(cursor)}` : path);
      yield* page.items;
      cursor = page.next_cursor;
    } while (cursor);
  }

  function endSession(message) {
    clearTimeout(session.timer);
    disconnectLive();
    session.access = null;
    session.me = null;
    sessionStorage.removeItem(REFRESH_KEY);
    flash = message || null;
    if (location.hash !== '#/login') location.hash = '#/login';
    else render();
  }

  async function logout() {
    try {
      await request('POST', '/api/v1/auth/logout', undefined, false);
    } catch {
      // The session ends here either way; the refresh token is forgotten below.
    }
    endSession();
  }

  const role = () => session.me?.role;
  const isAdmin = () => role() === 'district_admin';
  const canListUsers = () => ['district_admin', 'village_cadre', 'township_staff'].includes(role());
  const canReview = () => role() !== 'grid_worker';
  const canPublish = () => ['district_admin', 'township_staff'].includes(role());
  const BULLETIN_LEVELS = ['district', 'township', 'street'];
  const hasBulletinUnit = () => [...cache.units.values()].some((u) => BULLETIN_LEVELS.includes(u.level));

  // ---- formatting ----------------------------------------------------------------------------

  const pad = (n) => String(n).padStart(2, '0');
  function fmtDate(d) {
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
  }
  function fmtTime(unix) {
    if (unix === null || unix === undefined) return t('none');
    const d = new Date(unix * 1000);
    return `${fmtDate(d)} ${pad(d.getHours())}:${pad(d.getMinutes())}`;
  }
  const fmtPercent = (share) => (share === null || share === undefined ? t('none') : `${(share * 100).toFixed(1)}%`);
  const fmtNumber = (n, digits = 1) => (n === null || n === undefined ? t('none') : Number(n).toFixed(digits));

  const unitName = (id) => cache.units.get(id)?.name ?? id;
  function placeOf(orgPath) {
    // The path below the caller's own unit: the part that tells reports apart.
    const ids = orgPath.split('/').filter(Boolean);
    const from = Math.max(0, ids.indexOf(cache.root) + 1);
    return ids.slice(from).map(unitName).join(' / ') || unitName(ids[ids.length - 1]);
  }
  // Users outside the caller's area (an admin who edited a report, say) are not listed to them.
  const person = (id) => (id ? cache.users.get(id)?.display_name ?? t('other_user', { id: id.slice(0, 8) }) : t('none'));
  const shortId = (id) => (id.length > 16 ? `${id.slice(0, 15)}…` : id);
  const levelName = (level) => t(`level_${level}`);

  function schemaOf(kind, version) {
    const versions = cache.schemas.get(kind);
    if (!versions) return null;
    return versions.get(version) ?? [...versions.values()].pop();
  }
  const kindLabel = (kind) => label(schemaOf(kind)?.label) || kind;
  const latestSchemas = () => [...cache.schemas.values()].map((v) => [...v.values()].pop());

  // The definition a conflict path (`fields.NAME`, `log[ENTRY].NAME`) names.
  function defOf(schema, path) {
    const top = /^fields\.(.+)$/.exec(path);
    if (top) return schema?.fields.find((f) => f.id === top[1]) ?? null;
    const inLog = /^log\[[^\]]*\]\.(.+)$/.exec(path);
    if (inLog) return schema?.log?.fields.find((f) => f.id === inLog[1]) ?? null;
    return null;
  }

  function fieldText(def, value) {
    if (value === null || value === undefined || value === '') return t('none');
    if (value === '***') return t('redacted');
    if (Array.isArray(value)) return value.map((v) => fieldText(def, v)).join('、');
    if (def?.choices?.length) return label(def.choices.find((c) => c.id === value)?.label) || String(value);
    if (def?.type === 'person_ref') return person(value);
    if (typeof value === 'boolean') return t(value ? 'yes' : 'no');
    if (typeof value === 'object') {
      if ('lat' in value && 'lon' in value) return `${value.lat}, ${value.lon}`;
      return JSON.stringify(value);
    }
    return String(value);
  }

  function statusText(kind, version, status) {
    const schema = schemaOf(kind, version);
    const def = schema?.fields.find((f) => f.id === schema.status_field);
    return fieldText(def, status);
  }

  // ---- shell and routing ---------------------------------------------------------------------

  let flash = null;
  let renderCount = 0;

  const NAV = [
    ['dashboard', 'nav_dashboard', () => true],
    ['reports', 'nav_reports', () => true],
    ['conflicts', 'nav_conflicts', canReview],
    ['held', 'nav_held', canReview],
    ['users', 'nav_users', canListUsers],
    ['devices', 'nav_devices', () => true],
    ['org', 'nav_org', () => true],
    ['export', 'nav_export', () => true],
    ['dispatch', 'nav_dispatch', () => true],
    ['bulletin', 'nav_bulletin', hasBulletinUnit],
    ['forms', 'nav_forms', isAdmin],
  ];

  const PAGES = [
    [/^\/dashboard$/, pageDashboard],
    [/^\/reports$/, pageReports],
    [/^\/reports\/([^/]+)$/, pageReport],
    [/^\/conflicts$/, pageConflicts],
    [/^\/held$/, pageHeld],
    [/^\/users$/, pageUsers],
    [/^\/devices$/, pageDevices],
    [/^\/org$/, pageOrg],
    [/^\/export$/, pageExport],
    [/^\/dispatch$/, pageDispatch],
    [/^\/bulletin$/, pageBulletin],
    [/^\/forms$/, pageForms],
    [/^\/password$/, pagePassword],
  ];

  function langButton() {
    return h(
      'button',
      {
        type: 'button',
        class: 'lang',
        id: 'lang-toggle',
        onclick: () => {
          lang = lang === 'zh' ? 'en' : 'zh';
          localStorage.setItem(LANG_KEY, lang);
          render();
        },
      },
      t('lang_switch'),
    );
  }

  function route() {
    const [path, query] = location.hash.replace(/^#/, '').split('?');
    return { path: path || '/dashboard', query: new URLSearchParams(query || '') };
  }

  function go(path, query) {
    const q = query ? new URLSearchParams([...query].filter(([, v]) => v !== '')).toString() : '';
    location.hash = `#${path}${q ? `?${q}` : ''}`;
  }

  async function render() {
    const count = ++renderCount;
    document.documentElement.lang = lang === 'zh' ? 'zh-CN' : 'en';
    document.title = t('app_title');
    const app = document.getElementById('app');
    const { path, query } = route();
    if (!session.me) {
      app.replaceChildren(pageLogin());
      return;
    }
    if (path === '/login') {
      go('/dashboard');
      return;
    }
    const main = h('main', { id: 'main' }, h('p', { class: 'muted' }, t('loading')));
    const section = path.split('/')[1];
    app.replaceChildren(
      h(
        'header',
        { class: 'top' },
        h('span', { class: 'brand' }, t('app_title')),
        h(
          'nav',
          {},
          NAV.filter(([, , allowed]) => allowed()).map(([id, key]) =>
            h('a', { href: `#/${id}`, class: id === section ? 'current' : null, id: `nav-${id}` }, t(key)),
          ),
        ),
        h(
          'span',
          { class: 'who' },
          `${session.me.display_name} · ${t(`role_${session.me.role}`)}`,
        ),
        langButton(),
        h('a', { href: '#/password', class: 'link', id: 'change-password' }, t('change_password')),
        h('button', { type: 'button', class: 'link', id: 'logout', onclick: logout }, t('logout')),
      ),
      main,
    );
    const page = PAGES.find(([re]) => re.test(path));
    if (!page) {
      go('/dashboard');
      return;
    }
    const args = page[0].exec(path).slice(1).map(decodeURIComponent);
    try {
      const content = await page[1](query, ...args);
      if (count === renderCount) main.replaceChildren(...[flashBox(), content].flat().filter(Boolean));
    } catch (e) {
      if (count === renderCount) main.replaceChildren(failure(e));
    }
  }

  function flashBox() {
    if (!flash) return null;
    const box = h('p', { class: 'flash', role: 'status' }, flash);
    flash = null;
    return box;
  }

  function failure(e) {
    if (!(e instanceof ApiFailure)) {
      console.error(e);
      return h('p', { class: 'error' }, t('error', { detail: e.message }));
    }
    if (e.code === 'unit_too_fine') return h('p', { class: 'error' }, t('unit_too_fine'));
    if (e.status === 403) return h('p', { class: 'error' }, t('forbidden'));
    if (e.status === 404) return h('p', { class: 'error' }, t('not_found'));
    return h('p', { class: 'error' }, t('error', { detail: `${e.message} (${e.code || e.status})` }));
  }

  // A panel whose endpoint may not exist on this server yet: 404 means "unavailable".
  async function optional(fetcher, draw) {
    try {
      return draw(await fetcher());
    } catch (e) {
      if (e instanceof ApiFailure && e.status === 404) return h('p', { class: 'unavailable' }, t('unavailable'));
      return failure(e);
    }
  }

  function table(headers, rows, attrs = {}) {
    return h(
      'table',
      attrs,
      h('thead', {}, h('tr', {}, headers.map((x) => h('th', {}, x)))),
      h('tbody', {}, rows),
    );
  }

  function field(labelText, control) {
    return h('label', { class: 'field' }, h('span', {}, labelText), control);
  }

  function select(name, options, current) {
    return h(
      'select',
      { name, id: `f-${name}` },
      options.map(([value, text]) => h('option', { value, selected: value === (current ?? '') }, text)),
    );
  }

  // Units of the caller's tree, indented by depth, for filters.
  function orgOptions(withAll) {
    const rootDepth = (cache.units.get(cache.root)?.path.split('/').length ?? 0);
    const units = [...cache.units.values()].sort((a, b) => a.path.localeCompare(b.path));
    const options = units.map((u) => [
      u.id,
      `${'\u3000'.repeat(Math.max(0, u.path.split('/').length - rootDepth))}${u.name}（${levelName(u.level)}）`,
    ]);
    return withAll ? [['', t('all')], ...options] : options;
  }

  // ---- login ---------------------------------------------------------------------------------

  function pageLogin() {
    const message = h('p', { class: 'error', role: 'alert' }, flashBox()?.textContent ?? '');
    const form = h(
      'form',
      {
        class: 'login',
        id: 'login-form',
        onsubmit: async (event) => {
          event.preventDefault();
          const data = new FormData(form);
          message.textContent = '';
          try {
            await login(String(data.get('username')), String(data.get('password')));
            if (route().path === '/login') go('/dashboard');
            else render();
          } catch (e) {
            const key = `err_${e.code}`;
            message.textContent = I18N[lang][key] ? t(key) : t('error', { detail: e.message });
          }
        },
      },
      h('h1', {}, t('app_title')),
      h('h2', {}, t('login_title')),
      field(t('username'), h('input', { name: 'username', id: 'username', autocomplete: 'username', required: true })),
      field(
        t('password'),
        h('input', { name: 'password', id: 'password', type: 'password', autocomplete: 'current-password', required: true }),
      ),
      message,
      h('button', { type: 'submit', id: 'login-submit' }, t('login')),
      langButton(),
    );
    return h('div', { class: 'login-page' }, form);
  }

  // Changing one's own password ends every other session of the user, here and on phones.
  function pagePassword() {
    const message = h('p', { class: 'error', role: 'alert' });
    const form = h(
      'form',
      {
        class: 'password',
        id: 'password-form',
        onsubmit: async (event) => {
          event.preventDefault();
          const data = new FormData(form);
          message.textContent = '';
          const next = String(data.get('new_password'));
          if (next !== String(data.get('confirm_password'))) {
            message.textContent = t('password_mismatch');
            return;
          }
          try {
            const done = await send('POST', '/api/v1/auth/password', {
              current_password: String(data.get('current_password')),
              new_password: next,
            });
            flash = t('password_changed', { n: done.ended_sessions });
            go('/dashboard');
          } catch (e) {
            message.textContent =
              e.code === 'invalid_credentials' ? t('wrong_current_password') : failure(e).textContent;
          }
        },
      },
      h('h1', {}, t('change_password')),
      h('p', { class: 'muted' }, t('change_password_note')),
      field(
        t('current_password'),
        h('input', { name: 'current_password', id: 'current-password', type: 'password', autocomplete: 'current-password', required: true }),
      ),
      field(
        t('new_password'),
        h('input', { name: 'new_password', id: 'new-password', type: 'password', autocomplete: 'new-password', minlength: 10, required: true }),
      ),
      field(
        t('confirm_password'),
        h('input', { name: 'confirm_password', id: 'confirm-password', type: 'password', autocomplete: 'new-password', minlength: 10, required: true }),
      ),
      message,
      h('button', { type: 'submit', id: 'password-submit' }, t('change_password_submit')),
    );
    return form;
  }

  // ---- dashboard -----------------------------------------------------------------------------

  // The kinds the dashboard has cards of their own for; every other kind gets a card by status.
  const DEDICATED_KINDS = ['satisfaction_canvass', 'dispute_check', 'drug_control_case'];

  async function pageDashboard(query) {
    const now = new Date();
    const from = query.get('from') || fmtDate(new Date(now.getFullYear(), now.getMonth(), 1));
    const to = query.get('to') || fmtDate(now);
    const org = query.get('org') || cache.root;
    const unit = cache.units.get(org);
    const params = new URLSearchParams({ from, to, org });

    const form = h(
      'form',
      {
        class: 'filters',
        onsubmit: (event) => {
          event.preventDefault();
          go('/dashboard', new FormData(form));
        },
      },
      field(t('from'), h('input', { type: 'date', name: 'from', value: from })),
      field(t('to'), h('input', { type: 'date', name: 'to', value: to })),
      field(t('org'), select('org', orgOptions(false), org)),
      h('button', { type: 'submit' }, t('apply')),
    );

    // Rural townships and urban streets are ranked apart; below the district there is one group.
    const groups = unit?.level === 'district' ? ['township', 'street'] : [null];
    const canvassTitle = (group) => (group ? t('dash_satisfaction', { level: levelName(group) }) : t('dash_satisfaction_plain'));
    const canvass = groups.map((group) => {
      const p = new URLSearchParams(params);
      if (group) p.set('group', group);
      return optional(
        () => getJson(`/api/v1/stats/canvass?${p}`),
        (answer) => canvassChart(answer),
      ).then((content) => panel(canvassTitle(group), content, `canvass-${group ?? 'all'}`));
    });
    const worries = optional(
      () => getJson(`/api/v1/stats/canvass?${params}`),
      (answer) => worriesChart(answer.worries),
    ).then((content) => panel(t('dash_worries'), content, 'worries'));
    const disputes = optional(
      () => getJson(`/api/v1/stats/disputes?${params}`),
      (answer) => [disputesChart(answer), h('h3', { class: 'sub' }, t('dash_disputes_table')), disputesTable(answer)],
    ).then((content) => panel(t('dash_disputes'), content, 'disputes'));
    const drug = optional(
      () => getJson(`/api/v1/stats/drug?org=${encodeURIComponent(org)}`),
      (answer) => [
        h('p', { class: 'muted' }, t('dash_as_of', { date: answer.as_of })),
        drugTable(answer),
        // Small counts withheld for roles that may not see the cases (suppressed_below).
        answer.suppressed_below
          ? h('p', { class: 'muted', id: 'drug-small-cells' }, t('dash_drug_small', { n: answer.suppressed_below, m: answer.suppressed_below - 1 }))
          : null,
      ],
    ).then((content) => panel(t('dash_drug'), content, 'drug'));
    // Every other kind in service, published at runtime as much as built in: counts by status.
    // Townships and streets are groups apart, as for the canvass; a district's card lists both.
    const kindCounts = async (kind) => {
      const answers = await Promise.all(
        groups.map((group) => {
          const p = new URLSearchParams(params);
          if (group) p.set('group', group);
          return getJson(`/api/v1/stats/kinds/${encodeURIComponent(kind)}?${p}`);
        }),
      );
      return { ...answers[0], units: answers.flatMap((a) => a.units) };
    };
    const others = [...cache.schemas.keys()]
      .filter((kind) => !DEDICATED_KINDS.includes(kind) && cache.inService.has(kind))
      .map((kind) =>
        optional(() => kindCounts(kind), kindTable).then((content) =>
          panel(t('dash_kind', { kind: kindLabel(kind) }), content, `kind-${kind}`),
        ),
      );
    const panels = await Promise.all([...canvass, worries, disputes, drug, ...others]);
    return [form, h('div', { class: 'dashboard' }, panels)];
  }


  // Reports of one kind per unit and in total: how many, and how many with each status.
  function kindTable(answer) {
    const line = (u, name) =>
      h(
        'tr',
        {},
        h('td', {}, name),
        h('td', { class: 'num' }, u.total),
        answer.statuses.map((st) => h('td', { class: 'num' }, u.by_status[st.status] ?? 0)),
      );
    return table(
      [t('org'), t('dash_reports'), ...answer.statuses.map((st) => label(st.label) || st.status)],
      [...answer.units.map((u) => line(u, u.name)), line(answer.total, t('dash_total'))],
      { class: 'compact' },
    );
  }

  function panel(title, content, id) {
    return h('section', { class: 'panel', id: `panel-${id}` }, h('h2', {}, title), content);
  }

  // Satisfaction per unit as bars with their 95% interval; units with few interviews are drawn
  // pale and dashed and their rank is not stated.
  function canvassChart(answer) {
    const units = [...answer.units].sort((a, b) => (a.rank ?? 1e9) - (b.rank ?? 1e9));
    if (!units.length) return h('p', { class: 'muted' }, t('no_items'));
    const row = 28;
    // Sized for a full-width panel at 1366 px, so the text is drawn at about its CSS size.
    const [left, width, right] = [150, 760, 380];
    const values = units.flatMap((u) => (u.satisfaction ? [u.satisfaction.low, u.satisfaction.index] : []));
    const min = Math.max(0, Math.floor((Math.min(100, ...values) - 5) / 10) * 10);
    const x = (v) => left + ((v - min) / (100 - min)) * width;
    const svg = s('svg', {
      viewBox: `0 0 ${left + width + right} ${units.length * row + (values.length ? 24 : 4)}`,
      class: 'chart',
      role: 'img',
    });
    // No axis when no unit has interviews: there is nothing to measure against it.
    for (const tick of values.length ? [min, (min + 100) / 2, 100] : []) {
      svg.append(
        s('line', { x1: x(tick), x2: x(tick), y1: 0, y2: units.length * row, class: 'grid-line' }),
        s('text', { x: x(tick), y: units.length * row + 16, class: 'tick', 'text-anchor': 'middle' }, String(tick)),
      );
    }
    units.forEach((u, i) => {
      const y = i * row;
      const sat = u.satisfaction;
      svg.append(s('text', { x: left - 6, y: y + 18, 'text-anchor': 'end', class: 'name' }, u.name));
      if (!sat) {
        svg.append(s('text', { x: left + 4, y: y + 18, class: 'note' }, t('dash_no_interviews')));
        return;
      }
      const cls = u.few_interviews ? 'bar few' : 'bar';
      svg.append(
        s('rect', { x: left, y: y + 6, width: Math.max(1, x(sat.index) - left), height: row - 12, class: cls }),
        s('line', { x1: x(sat.low), x2: x(sat.high), y1: y + row / 2, y2: y + row / 2, class: 'whisker' }),
        s('line', { x1: x(sat.low), x2: x(sat.low), y1: y + 8, y2: y + row - 8, class: 'whisker' }),
        s('line', { x1: x(sat.high), x2: x(sat.high), y1: y + 8, y2: y + row - 8, class: 'whisker' }),
      );
      const parts = [fmtNumber(sat.index), t('dash_interviews', { n: u.interviews })];
      if (u.few_interviews) parts.push(t('dash_few'));
      else if (u.rank !== null && u.rank !== undefined)
        parts.push(
          u.rank_best === u.rank_worst
            ? t('dash_rank_single', { rank: u.rank })
            : t('dash_rank', { rank: u.rank, best: u.rank_best, worst: u.rank_worst }),
        );
      if (u.change?.satisfaction !== null && u.change?.satisfaction !== undefined) {
        const c = u.change.satisfaction;
        parts.push(t('dash_change', { change: `${c > 0 ? '+' : ''}${c.toFixed(1)}` }));
      }
      svg.append(
        s('text', { x: left + width + 8, y: y + 18, class: u.few_interviews ? 'value few-text' : 'value' }, parts.join(' · ')),
      );
    });
    return [svg, h('p', { class: 'hint' }, t('dash_satisfaction_hint'))];
  }

  function worriesChart(worries) {
    if (!worries?.length) return h('p', { class: 'muted' }, t('no_items'));
    const top = worries.slice(0, 8);
    const max = Math.max(...top.map((w) => w.count));
    return h(
      'ol',
      { class: 'bars' },
      top.map((w) =>
        h(
          'li',
          {},
          h('span', { class: 'bar-label' }, label(w.label) || w.worry),
          meter(w.count / max),
          h('span', { class: 'bar-value' }, `${w.count}（${fmtPercent(w.share)}）`),
        ),
      ),
    );
  }

  function meter(fraction) {
    const svg = s('svg', { viewBox: '0 0 100 10', preserveAspectRatio: 'none', class: 'meter' });
    svg.append(s('rect', { x: 0, y: 0, width: Math.max(0.5, fraction * 100), height: 10, class: 'bar' }));
    return svg;
  }

  const DISPUTE_STATUSES = ['reported', 'mediating', 'resolved', 'referred', 'escalated'];

  // Disputes found in the period per unit, stacked by status.
  function disputesChart(answer) {
    const units = answer.units;
    if (!units.length) return h('p', { class: 'muted' }, t('no_items'));
    const row = 24;
    // Sized for a half-width panel at 1366 px.
    const [left, width] = [100, 400];
    const max = Math.max(1, ...units.map((u) => DISPUTE_STATUSES.reduce((n, st) => n + (u.by_status?.[st] ?? 0), 0)));
    const svg = s('svg', { viewBox: `0 0 ${left + width + 50} ${units.length * row}`, class: 'chart', role: 'img' });
    units.forEach((u, i) => {
      const y = i * row;
      svg.append(s('text', { x: left - 6, y: y + 16, 'text-anchor': 'end', class: 'name' }, u.name));
      let at = left;
      let sum = 0;
      for (const st of DISPUTE_STATUSES) {
        const n = u.by_status?.[st] ?? 0;
        if (!n) continue;
        const w = (n / max) * width;
        svg.append(
          s('rect', { x: at, y: y + 4, width: w, height: row - 8, class: `seg st-${st}` }, s('title', {}, `${statusText('dispute_check', 1, st)}: ${n}`)),
        );
        at += w;
        sum += n;
      }
      svg.append(s('text', { x: at + 6, y: y + 16, class: 'value' }, String(sum)));
    });
    const legend = h(
      'p',
      { class: 'legend' },
      DISPUTE_STATUSES.map((st) => h('span', {}, h('i', { class: `swatch st-${st}` }), statusText('dispute_check', 1, st))),
    );
    return [svg, legend];
  }

  function disputesTable(answer) {
    const line = (u, name) =>
      h(
        'tr',
        {},
        h('td', {}, name),
        h('td', { class: 'num' }, u.found),
        h('td', { class: 'num' }, u.open),
        h('td', { class: 'num' }, u.open_by_risk?.high ?? 0),
        h('td', { class: 'num' }, fmtPercent(u.resolved_in_village?.share)),
        h('td', { class: 'num' }, fmtNumber(u.median_days_to_resolution)),
        h('td', { class: `num ${u.overdue_follow_ups ? 'alert' : ''}` }, u.overdue_follow_ups),
      );
    return table(
      [t('org'), t('dash_found'), t('dash_open'), t('dash_open_high'), t('dash_in_village'), t('dash_median_days'), t('dash_overdue_follow_ups')],
      [...answer.units.map((u) => line(u, u.name)), answer.total ? line(answer.total, t('dash_total')) : null],
      { class: 'compact' },
    );
  }

  // A withheld count (null) reads "<5": it lies between 1 and suppressed_below - 1.
  function drugTable(answer) {
    const count = (n) => (n === null ? `<${answer.suppressed_below}` : n);
    const line = (u, name) =>
      h(
        'tr',
        {},
        h('td', {}, name),
        h('td', { class: 'num' }, count(u.active)),
        h('td', { class: 'num' }, count(u.relapsed)),
        h('td', { class: `num ${u.visits_overdue !== 0 ? 'alert' : ''}` }, count(u.visits_overdue)),
        h('td', { class: 'num' }, count(u.tests_due)),
      );
    return table(
      [t('org'), t('dash_active'), t('dash_relapsed'), t('dash_visits_overdue'), t('dash_tests_due')],
      [...answer.units.map((u) => line(u, u.name)), answer.total ? line(answer.total, t('dash_total')) : null],
      { class: 'compact' },
    );
  }

  // ---- reports -------------------------------------------------------------------------------

  const REVIEW_STATES = ['received', 'needs_attention', 'approved'];
  const FILTERS = ['kind', 'org', 'status', 'review_state', 'has_conflicts', 'q'];

  function statusOptions(kind) {
    const seen = new Map();
    for (const schema of latestSchemas()) {
      if (kind && schema.kind !== kind) continue;
      const def = schema.fields.find((f) => f.id === schema.status_field);
      for (const c of def?.choices ?? []) if (!seen.has(c.id)) seen.set(c.id, label(c.label));
    }
    return [['', t('all')], ...seen];
  }

  // The first filled, readable text field: what a person would call the report.
  function summaryOf(report) {
    const schema = schemaOf(report.kind, report.schema_version);
    for (const def of schema?.fields ?? []) {
      const value = report.fields?.[def.id];
      if (def.type === 'text' && typeof value === 'string' && value && value !== '***') {
        return value.length > 40 ? `${value.slice(0, 40)}…` : value;
      }
    }
    return t('none');
  }

  async function pageReports(query) {
    const params = new URLSearchParams();
    for (const name of [...FILTERS, 'cursor']) if (query.get(name)) params.set(name, query.get(name));
    params.set('limit', '25');
    const pageNo = Number(query.get('page') || 1);
    const list = await getJson(`/api/v1/reports?${params}`);
    const kind = query.get('kind') || '';

    const form = h(
      'form',
      {
        class: 'filters',
        id: 'report-filters',
        onsubmit: (event) => {
          event.preventDefault();
          const data = new FormData(form);
          go('/reports', new URLSearchParams(FILTERS.map((f) => [f, String(data.get(f) ?? '')])));
        },
      },
      field(t('kind'), select('kind', [['', t('all')], ...latestSchemas().map((sc) => [sc.kind, label(sc.label)])], kind)),
      field(t('org'), select('org', orgOptions(true), query.get('org'))),
      field(t('status'), select('status', statusOptions(kind), query.get('status'))),
      field(
        t('review_state'),
        select('review_state', [['', t('all')], ...REVIEW_STATES.map((r) => [r, t(`review_${r}`)])], query.get('review_state')),
      ),
      h(
        'label',
        { class: 'check' },
        h('input', { type: 'checkbox', name: 'has_conflicts', value: 'true', id: 'f-has_conflicts', checked: query.get('has_conflicts') === 'true' }),
        t('has_conflicts'),
      ),
      field(t('search'), h('input', { type: 'search', name: 'q', value: query.get('q') || '', placeholder: t('search_placeholder') })),
      h('button', { type: 'submit', id: 'apply-filters' }, t('apply')),
      h('button', { type: 'button', class: 'link', onclick: () => go('/reports') }, t('reset')),
    );

    const rows = list.items.map((r) =>
      h(
        'tr',
        { class: r.has_conflicts ? 'has-conflicts' : null },
        h('td', {}, h('a', { href: `#/reports/${encodeURIComponent(r.id)}`, class: 'report-link' }, kindLabel(r.kind))),
        h('td', {}, placeOf(r.org_path)),
        h('td', {}, statusText(r.kind, r.schema_version, r.status)),
        h('td', {}, t(`review_${r.review_state}`)),
        h('td', {}, r.has_conflicts ? h('span', { class: 'badge conflict' }, t('has_conflicts')) : ''),
        h('td', { class: 'summary' }, summaryOf(r)),
        h('td', { class: 'time' }, fmtTime(r.updated_at)),
      ),
    );
    const pager = h(
      'div',
      { class: 'pager' },
      h('span', {}, `${t('total_items', { n: list.total_capped ? `${list.total}+` : list.total })} · ${t('page_n', { n: pageNo })}`),
      pageNo > 1 ? h('button', { type: 'button', onclick: () => history.back() }, t('prev_page')) : null,
      list.next_cursor
        ? h(
            'button',
            {
              type: 'button',
              id: 'next-page',
              onclick: () => {
                const next = new URLSearchParams(query);
                next.set('cursor', list.next_cursor);
                next.set('page', String(pageNo + 1));
                go('/reports', next);
              },
            },
            t('next_page'),
          )
        : null,
    );
    return [
      form,
      rows.length
        ? table([t('kind'), t('grid'), t('status'), t('review_state'), '', t('summary'), t('updated_at')], rows, { id: 'report-list' })
        : h('p', { class: 'muted' }, t('no_items')),
      pager,
    ];
  }

  async function pageReport(_query, id) {
    const path = `/api/v1/reports/${encodeURIComponent(id)}`;
    const [report, history] = await Promise.all([getJson(path), getJson(`${path}/history`)]);
    const schema = schemaOf(report.kind, report.schema_version);
    const fieldDefs = new Map((schema?.fields ?? []).map((f) => [f.id, f]));

    const review = canReview()
      ? h(
          'div',
          { class: 'review', id: 'review' },
          h('span', {}, `${t('review_state')}${t('colon')}`),
          REVIEW_STATES.map((state) =>
            h(
              'button',
              {
                type: 'button',
                class: state === report.review_state ? 'current' : null,
                disabled: state === report.review_state,
                'data-state': state,
                onclick: async () => {
                  try {
                    await send('POST', `${path}/review`, { state });
                    flash = t('review_saved');
                  } catch (e) {
                    flash = failure(e).textContent;
                  }
                  render();
                },
              },
              t(`review_${state}`),
            ),
          ),
        )
      : h('p', {}, `${t('review_state')}${t('colon')}${t(`review_${report.review_state}`)}`);

    const header = h(
      'div',
      { class: 'report-head' },
      h('h1', {}, `${kindLabel(report.kind)} · ${placeOf(report.org_path)}`),
      h(
        'p',
        { class: 'muted' },
        `${statusText(report.kind, report.schema_version, report.status)} · ${t('report_created_by', {
          who: person(report.created_by),
          when: fmtTime(report.created_at),
        })} · ${report.id}`,
      ),
      review,
    );

    const conflicts = report.conflicts.length
      ? h('section', { class: 'conflicts', id: 'conflicts' }, h('h2', {}, t('report_conflicts')), report.conflicts.map((c) => conflictCard(c, schema)))
      : null;

    const problems = report.problems.length
      ? h(
          'section',
          { class: 'problems' },
          h('h2', {}, t('report_problems')),
          h(
            'ul',
            {},
            report.problems.map((p) =>
              h('li', {}, `${label(defOf(schema, p.path)?.label) || p.path}${t('colon')}${I18N[lang][`problem_${p.code}`] ? t(`problem_${p.code}`) : p.message}`),
            ),
          ),
        )
      : null;

    const fields = h(
      'section',
      { id: 'fields' },
      h('h2', {}, t('report_fields')),
      h(
        'dl',
        { class: 'fields' },
        [...fieldDefs.values()].map((def) => [
          h('dt', { class: def.sensitive ? 'sensitive' : null }, label(def.label)),
          h(
            'dd',
            { 'data-field': def.id },
            def.type === 'attachment' ? attachmentNames(report.attachments, def.id) : fieldText(def, report.fields[def.id]),
          ),
        ]),
        Object.keys(report.fields)
          .filter((k) => !fieldDefs.has(k))
          .map((k) => [h('dt', {}, k), h('dd', { 'data-field': k }, fieldText(null, report.fields[k]))]),
      ),
    );

    const log = schema?.log && report.log.length ? logTable(schema.log, report.log) : null;
    const attachments = report.attachments?.length ? attachmentsSection(report.id, schema, report.attachments) : null;

    return [
      header,
      conflicts,
      problems,
      h('div', { class: 'columns' }, fields, historySection(schema, history.changes)),
      log,
      attachments,
    ];
  }

  function conflictCard(conflict, schema) {
    const def = defOf(schema, conflict.path);
    const name = label(def?.label) || conflict.path;
    if (conflict.code === 'edited_after_removal') return removalCard(conflict, schema);
    if (conflict.code !== 'concurrent_values') {
      // A rule flag: its message, and a note to close it with.
      const note = h('input', { type: 'text', name: 'note', placeholder: t('conflict_note') });
      const message = typeof conflict.detail === 'string' ? conflict.detail : label(conflict.detail?.message ?? conflict.detail) || JSON.stringify(conflict.detail);
      return h(
        'div',
        { class: 'conflict flag', 'data-conflict': conflict.id },
        h('h3', {}, t('conflict_field', { field: name })),
        h('p', {}, message),
        note,
        h('button', { type: 'button', onclick: () => resolve(conflict, null, note.value || null) }, t('conflict_flag_resolve')),
      );
    }
    const values = Array.isArray(conflict.detail) ? conflict.detail : [];
    return h(
      'div',
      { class: 'conflict', 'data-conflict': conflict.id },
      h('h3', {}, t('conflict_field', { field: name })),
      h(
        'div',
        { class: 'sides' },
        values.map((v, i) =>
          h(
            'div',
            { class: 'side' },
            h('p', { class: 'value' }, fieldText(def, v.value)),
            h('p', { class: 'muted' }, `${person(v.author)} · ${fmtTime(v.time)}${i === 0 ? ` · ${t('conflict_shown')}` : ''}`),
            v.value === '***'
              ? h('p', { class: 'muted' }, t('conflict_redacted'))
              : h('button', { type: 'button', class: 'pick', onclick: () => resolve(conflict, v.value, null) }, t('conflict_pick')),
          ),
        ),
      ),
    );
  }

  // A log entry removed while someone edited it: what it holds now, and whether to bring it
  // back with the edit or confirm the removal.
  function removalCard(conflict, schema) {
    const detail = conflict.detail ?? {};
    const defs = schema?.log?.fields ?? [];
    const note = h('input', { type: 'text', name: 'note', placeholder: t('conflict_note') });
    const removedAt = Date.parse(detail.removed_at ?? '');
    return h(
      'div',
      { class: 'conflict flag', 'data-conflict': conflict.id },
      h('h3', {}, label(schema?.log?.label) || t('report_log')),
      h('p', {}, label(detail.message)),
      h(
        'p',
        { class: 'muted' },
        t('removal_by', {
          who: person(detail.removed_by),
          when: Number.isNaN(removedAt) ? t('none') : fmtTime(removedAt / 1000),
          editors: (detail.edited_by ?? []).map(person).join('、'),
        }),
      ),
      h(
        'dl',
        { class: 'fields' },
        Object.entries(detail.values ?? {}).map(([id, value]) => {
          const def = defs.find((f) => f.id === id) ?? null;
          return [h('dt', {}, label(def?.label) || id), h('dd', {}, fieldText(def, value))];
        }),
      ),
      note,
      h('button', { type: 'button', onclick: () => resolve(conflict, 'restore', note.value || null) }, t('removal_restore')),
      h('button', { type: 'button', onclick: () => resolve(conflict, null, note.value || null) }, t('removal_confirm')),
    );
  }

  async function resolve(conflict, value, note) {
    try {
      await send('POST', `/api/v1/conflicts/${conflict.id}/resolve`, note ? { value, note } : { value });
      flash = t('conflict_resolved');
    } catch (e) {
      flash = failure(e).textContent;
    }
    render();
  }

  function logTable(logDef, entries) {
    return h(
      'section',
      { id: 'log' },
      h('h2', {}, `${t('report_log')} · ${label(logDef.label)}`),
      h(
        'div',
        { class: 'scroll' },
        table(
          logDef.fields.map((f) => label(f.label)),
          entries.map((entry) => h('tr', {}, logDef.fields.map((f) => h('td', {}, fieldText(f, entry[f.id]))))),
          { class: 'compact' },
        ),
      ),
    );
  }

  function historySection(schema, changes) {
    const fieldName = (id) => label(schema?.fields.find((f) => f.id === id)?.label) || id;
    const logFieldName = (id) => label(schema?.log?.fields.find((f) => f.id === id)?.label) || id;
    const what = (c) => {
      const parts = [];
      if (c.created) parts.push(t('history_created'));
      if (c.fields.length) parts.push(c.fields.map(fieldName).join('、'));
      if (c.attachments?.length) parts.push(t('history_attachments', { n: c.attachments.length }));
      for (const touch of c.log) {
        parts.push(
          t('history_log', {
            log: label(schema?.log?.label) || t('report_log'),
            action: t(`log_${touch.action}`),
            fields: (touch.fields ?? []).map(logFieldName).join('、'),
          }),
        );
      }
      return parts.join('；');
    };
    return h(
      'section',
      { id: 'history' },
      h('h2', {}, t('report_history')),
      table(
        [t('history_time'), t('history_author'), t('history_device'), t('history_what')],
        [...changes].reverse().map((c) =>
          h(
            'tr',
            {},
            h('td', { class: 'time' }, fmtTime(c.time)),
            h('td', {}, person(c.author)),
            h('td', { class: 'nowrap', title: c.device_id ?? '' }, c.device_id ? shortId(c.device_id) : t('history_in_browser')),
            h('td', {}, what(c)),
          ),
        ),
        { class: 'compact' },
      ),
    );
  }

  // Thumbnails and full views are fetched with the bearer token and shown from blob URLs.
  async function blobUrl(path) {
    const response = await request('GET', path);
    return URL.createObjectURL(await response.blob());
  }

  const attachmentName = (a) => (a.name === '***' ? t('redacted') : a.name || a.sha256.slice(0, 12));

  // An attachment field's value: the names of the files attached under it.
  function attachmentNames(attachments, fieldId) {
    const names = (attachments ?? []).filter((a) => a.field === fieldId).map(attachmentName);
    return names.length ? names.join('、') : t('none');
  }

  function attachmentsSection(reportId, schema, attachments) {
    const items = attachments.map((a) => {
      const caption = `${label(schema?.fields.find((f) => f.id === a.field)?.label) || a.field} · ${attachmentName(a)}`;
      const item = h('figure', { class: 'attachment' }, h('figcaption', { title: caption }, caption));
      if (!a.uploaded) {
        item.prepend(h('div', { class: 'thumb pending' }, t('attachment_pending')));
        return item;
      }
      const full = `/api/v1/reports/${encodeURIComponent(reportId)}/attachments/${a.sha256}`;
      const open = h('button', { type: 'button', class: 'thumb', title: t('attachment_open'), onclick: () => showFull(full, a) });
      item.prepend(open);
      if (a.thumbnail) {
        blobUrl(a.thumbnail)
          .then((url) => open.append(h('img', { src: url, alt: a.name || '' })))
          .catch(() => open.append(t('unavailable')));
      } else {
        open.append(a.media_type);
      }
      return item;
    });
    return h('section', { id: 'attachments' }, h('h2', {}, t('report_attachments')), h('div', { class: 'thumbs' }, items));
  }

  async function showFull(path, attachment) {
    const overlay = h('div', { class: 'overlay', onclick: () => overlay.remove() }, h('p', {}, t('loading')));
    document.body.append(overlay);
    try {
      const url = await blobUrl(path);
      overlay.replaceChildren(
        attachment.media_type.startsWith('image/')
          ? h('img', { src: url, alt: attachment.name || '' })
          : h('a', { href: url, download: attachmentName(attachment) }, t('download')),
        h('button', { type: 'button', class: 'close' }, t('close')),
      );
    } catch (e) {
      overlay.replaceChildren(failure(e));
    }
  }

  // ---- conflicts -----------------------------------------------------------------------------

  async function pageConflicts(query) {
    const params = new URLSearchParams({ limit: '50' });
    if (query.get('cursor')) params.set('cursor', query.get('cursor'));
    const list = await getJson(`/api/v1/conflicts?${params}`);
    const rows = list.items.map((c) => {
      const schema = schemaOf(c.kind);
      const def = defOf(schema, c.path);
      // Concurrent values side by side; a flag's message otherwise.
      const values = Array.isArray(c.detail) ? c.detail.map((v) => fieldText(def, v.value)).join(' ↔ ') : label(c.detail?.message ?? c.detail);
      return h(
        'tr',
        {},
        h('td', {}, h('a', { href: `#/reports/${encodeURIComponent(c.report_id)}` }, kindLabel(c.kind))),
        h('td', {}, unitName(c.grid_id)),
        h('td', {}, label(def?.label) || c.path),
        h('td', {}, values),
        h('td', { class: 'time' }, fmtTime(c.detected_at)),
      );
    });
    return [
      h('h1', {}, t('conflicts_title')),
      rows.length
        ? table([t('conflict_report'), t('grid'), t('field_name'), t('conflict_values'), t('detected_at')], rows, { id: 'conflict-list' })
        : h('p', { class: 'muted' }, t('no_items')),
      h(
        'div',
        { class: 'pager' },
        h('span', {}, t('total_items', { n: list.total })),
        list.next_cursor ? h('button', { type: 'button', onclick: () => go('/conflicts', new URLSearchParams({ cursor: list.next_cursor })) }, t('next_page')) : null,
      ),
    ];
  }

  // ---- users and devices ---------------------------------------------------------------------

  async function pageUsers() {
    const users = [];
    for await (const user of pages('/api/v1/users?limit=200')) users.push(user);
    for (const user of users) cache.users.set(user.id, user);
    const rows = users.map((u) =>
      h(
        'tr',
        { class: u.disabled ? 'disabled' : null },
        h('td', {}, u.username),
        h('td', {}, u.display_name),
        h('td', {}, t(`role_${u.role}`)),
        h('td', {}, unitName(u.org_unit_id)),
        h('td', {}, u.disabled ? t('disabled') : t('active')),
        h(
          'td',
          {},
          isAdmin() && u.id !== session.me.id
            ? h(
                'button',
                {
                  type: 'button',
                  onclick: async () => {
                    if (!u.disabled && !confirm(t('confirm_disable', { name: u.display_name }))) return;
                    try {
                      await send('PATCH', `/api/v1/users/${encodeURIComponent(u.id)}`, { disabled: !u.disabled });
                      flash = t('saved');
                    } catch (e) {
                      flash = failure(e).textContent;
                    }
                    render();
                  },
                },
                u.disabled ? t('enable_user') : t('disable_user'),
              )
            : '',
        ),
      ),
    );
    return [
      h('h1', {}, t('users_title')),
      table([t('username'), t('display_name'), t('role'), t('org'), t('status'), ''], rows, { id: 'user-list' }),
    ];
  }

  async function pageDevices() {
    const devices = await getJson('/api/v1/devices');
    devices.sort((a, b) => b.last_seen_at - a.last_seen_at);
    // One action, confirmed with what it does to what the phone still holds.
    const action = (d, what, question) =>
      h(
        'button',
        {
          type: 'button',
          class: `device-${what}`,
          onclick: async () => {
            if (!confirm(question)) return;
            try {
              await send('POST', `/api/v1/devices/${encodeURIComponent(d.id)}/${what}`);
              flash = t('saved');
            } catch (e) {
              flash = failure(e).textContent;
            }
            render();
          },
        },
        t(what),
      );
    const unsent = (d) =>
      d.pending_changes === null || d.pending_changes === undefined
        ? t('unsent_unknown')
        : `${d.pending_changes}${d.pending_at ? ` (${fmtTime(d.pending_at)})` : ''}`;
    const rows = devices.map((d) =>
      h(
        'tr',
        { class: d.state === 'active' ? null : 'disabled', 'data-device': d.id },
        h('td', {}, d.name, d.id === session.me.device_id ? ` ${t('this_device')}` : ''),
        h('td', {}, person(d.user_id)),
        h('td', { class: 'time' }, fmtTime(d.last_seen_at)),
        h('td', { class: 'unsent' }, unsent(d)),
        h('td', { class: 'state' }, t(`device_${d.state}`)),
        h(
          'td',
          {},
          d.state === 'active' || d.state === 'retiring'
            ? [
                d.state === 'active' ? action(d, 'retire', t('confirm_retire', { name: d.name })) : null,
                action(
                  d,
                  'revoke',
                  t('confirm_revoke', { name: d.name, unsent: unsent(d) }),
                ),
              ]
            : '',
        ),
      ),
    );
    return [
      h('h1', {}, t('devices_title')),
      h('p', { class: 'muted' }, t('devices_help')),
      table([t('device'), t('user'), t('last_seen_at'), t('unsent'), t('status'), ''], rows, { id: 'device-list' }),
    ];
  }

  // ---- held work -----------------------------------------------------------------------------

  async function pageHeld() {
    const list = await getJson('/api/v1/held?limit=100');
    const decide = (item, what) => async () => {
      const note = prompt(t(what === 'merge' ? 'held_merge_note' : 'held_decline_note'));
      if (note === null) return;
      try {
        await send('POST', `/api/v1/held/${item.id}/${what}`, { note: note || null });
        flash = t(what === 'merge' ? 'held_merged' : 'held_declined');
      } catch (e) {
        flash = failure(e).textContent;
      }
      render();
    };
    const cards = list.items.map((item) => {
      const schema = schemaOf(item.kind);
      const rows = item.differences.map((d) => {
        const def = defOf(schema, d.path);
        const name = d.path.startsWith('log[') ? t('held_log_entry') : label(def?.label) || d.path;
        const show = (v) => (d.path.startsWith('log[') ? (v ? t('held_entry_present') : t('none')) : fieldText(def, v));
        return h('tr', {}, h('td', {}, name), h('td', {}, show(d.current)), h('td', {}, show(d.held)));
      });
      return h(
        'section',
        { class: 'held-item', 'data-held': String(item.id) },
        h(
          'h2',
          {},
          `${kindLabel(item.kind)} · ${unitName(item.grid_id)} · `,
          h('a', { href: `#/reports/${encodeURIComponent(item.report_id)}` }, item.report_id.slice(0, 8)),
        ),
        h(
          'p',
          { class: 'muted' },
          t('held_by', {
            who: person(item.author_id),
            n: item.changes,
            when: fmtTime(item.updated_at),
          }),
        ),
        h('p', {}, t(`held_reason_${item.code}`)),
        rows.length
          ? table([t('field_name'), t('held_current'), t('held_value')], rows)
          : h('p', { class: 'muted' }, t('held_no_difference')),
        h(
          'div',
          { class: 'actions' },
          h('button', { type: 'button', class: 'held-merge', onclick: decide(item, 'merge') }, t('held_merge')),
          h('button', { type: 'button', class: 'held-decline', onclick: decide(item, 'decline') }, t('held_decline')),
        ),
      );
    });
    return [
      h('h1', {}, t('held_title')),
      h('p', { class: 'muted' }, t('held_help')),
      cards.length ? h('div', { id: 'held-list' }, cards) : h('p', { class: 'muted' }, t('no_items')),
    ];
  }

  // ---- org tree ------------------------------------------------------------------------------

  async function pageOrg() {
    const children = new Map();
    for (const unit of cache.units.values()) {
      const parent = unit.parent_id ?? '';
      if (!children.has(parent)) children.set(parent, []);
      children.get(parent).push(unit);
    }
    for (const list of children.values()) list.sort((a, b) => a.name.localeCompare(b.name, 'zh'));
    const branch = (unit) =>
      h(
        'li',
        {},
        h('span', { class: 'unit' }, unit.name),
        h('span', { class: 'level' }, levelName(unit.level)),
        h('span', { class: 'muted' }, unit.id),
        children.has(unit.id) ? h('ul', {}, children.get(unit.id).map(branch)) : null,
      );
    const root = cache.units.get(cache.root);
    return [
      h('h1', {}, t('org_title')),
      h('p', { class: 'muted' }, [...cache.ancestors.map((a) => a.name), root?.name].filter(Boolean).join(' / '), ' · ', t('org_units', { n: cache.units.size })),
      root ? h('ul', { class: 'tree', id: 'org-tree' }, branch(root)) : null,
    ];
  }

  // ---- ledger export -------------------------------------------------------------------------

  // Saves the file an endpoint answers under the name its Content-Disposition gives; that name.
  async function download(path, fallback) {
    const response = await request('GET', path);
    const disposition = response.headers.get('Content-Disposition') || '';
    const name = decodeURIComponent(/filename\*=UTF-8''([^;]+)/i.exec(disposition)?.[1] ?? /filename="?([^";]+)"?/.exec(disposition)?.[1] ?? fallback);
    const link = h('a', { href: URL.createObjectURL(await response.blob()), download: name });
    document.body.append(link);
    link.click();
    link.remove();
    return name;
  }

  async function pageExport(query) {
    const now = new Date();
    const values = {
      kind: query.get('kind') || latestSchemas()[0]?.kind || '',
      format: query.get('format') || 'xlsx',
      from: query.get('from') || fmtDate(new Date(now.getFullYear(), now.getMonth(), 1)),
      to: query.get('to') || fmtDate(now),
      org: query.get('org') || cache.root,
      lang: query.get('lang') || lang,
    };
    const url = h('output', { id: 'export-url' });
    const message = h('p', { role: 'status', id: 'export-status' });
    const exportUrl = () => `/api/v1/export?${new URLSearchParams(new FormData(form))}`;
    const form = h(
      'form',
      {
        class: 'filters export',
        id: 'export-form',
        oninput: () => {
          url.textContent = exportUrl();
        },
        onsubmit: async (event) => {
          event.preventDefault();
          message.replaceChildren(t('loading'));
          try {
            const name = await download(exportUrl(), `ledger.${values.format}`);
            message.replaceChildren(t('export_done', { name }));
          } catch (e) {
            message.replaceChildren(e instanceof ApiFailure && e.status === 404 ? t('unavailable') : failure(e).textContent);
          }
        },
      },
      field(t('kind'), select('kind', latestSchemas().map((sc) => [sc.kind, label(sc.label)]), values.kind)),
      field(t('export_format'), select('format', [['xlsx', 'Excel (XLSX)'], ['csv', 'CSV']], values.format)),
      field(t('from'), h('input', { type: 'date', name: 'from', value: values.from })),
      field(t('to'), h('input', { type: 'date', name: 'to', value: values.to })),
      field(t('org'), select('org', orgOptions(false), values.org)),
      field(t('export_lang'), select('lang', [['zh', t('export_lang_zh')], ['en', t('export_lang_en')]], values.lang)),
      h('button', { type: 'submit', id: 'export-submit' }, t('download')),
    );
    url.textContent = exportUrl();
    return [h('h1', {}, t('export_title')), form, h('p', { class: 'url' }, `${t('export_url')}${t('colon')}`, url), message];
  }

  // ---- the weekly dispatch board ---------------------------------------------------------------

  // Per unit down the tree: tasks due this week and done, open and overdue, with the overdue
  // dispute follow-ups and drug-control visits; then the open tasks due by the week's end.
  async function pageDispatch(query) {
    const org = query.get('org') || cache.root;
    const week = query.get('week') || fmtDate(new Date());
    const form = h(
      'form',
      {
        class: 'filters no-print',
        id: 'dispatch-form',
        onsubmit: (event) => {
          event.preventDefault();
          go('/dispatch', new FormData(form));
        },
      },
      field(t('dispatch_week'), h('input', { type: 'date', name: 'week', value: week })),
      field(t('org'), select('org', orgOptions(false), org)),
      h('button', { type: 'submit' }, t('apply')),
    );
    const b = await getJson(`/api/v1/dispatch?${new URLSearchParams({ org, week })}`);
    const count = (n, alert) => h('td', { class: `num ${alert && n ? 'alert' : ''}` }, n ?? t('none'));
    const line = (u, name) =>
      h(
        'tr',
        {},
        h('td', {}, name),
        h('td', { class: 'num' }, `${u.done_this_week} / ${u.due_this_week}`),
        count(u.open, false),
        count(u.overdue, true),
        count(u.overdue_dispute_follow_ups, true),
        count(u.drug_visits_overdue, true),
      );
    const board = table(
      [t('org'), t('dispatch_done_due'), t('dispatch_open'), t('dispatch_overdue'), t('dash_overdue_follow_ups'), t('dash_visits_overdue')],
      [...b.units.map((u) => line(u, u.name)), line(b.total, t('dash_total'))],
      { class: 'compact', id: 'dispatch-board' },
    );
    const gridName = (id) => cache.units.get(id)?.name ?? id;
    const due = b.due.length
      ? table(
          [t('dispatch_due'), t('dispatch_task'), t('level_grid'), t('dispatch_progress')],
          b.due.map((task) =>
            h(
              'tr',
              { class: task.overdue ? 'overdue' : null },
              h('td', {}, task.due, task.overdue ? ` ${t('dispatch_overdue_mark')}` : ''),
              h('td', {}, task.title),
              h('td', {}, gridName(task.grid_id)),
              h('td', { class: 'num' }, `${task.progress} / ${task.needed}`),
            ),
          ),
          { class: 'compact', id: 'dispatch-due' },
        )
      : h('p', { class: 'muted' }, t('no_items'));
    return [
      h('h1', {}, t('dispatch_title', { from: b.week_from, to: b.week_to })),
      form,
      h('section', { class: 'panel' }, board),
      h('section', { class: 'panel' }, h('h2', {}, t('dispatch_due_title')), due),
    ];
  }

  // ---- bulletins -----------------------------------------------------------------------------

  function lastMonth() {
    const now = new Date();
    const d = new Date(now.getFullYear(), now.getMonth() - 1, 1);
    return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, '0')}`;
  }

  // 2026-11 → 2026年11月, 2026-Q4 → 2026年第4季度, 2026 → 2026年 (and the English forms).
  function periodText(period) {
    const [year, part] = period.split('-');
    if (!part) return t('bulletin_year', { year });
    if (part.startsWith('Q')) return t('bulletin_quarter', { year, q: part.slice(1) });
    return t('bulletin_month', { year, month: Number(part) });
  }

  // The bulletin of a period and a unit as an A4 sheet: drawn from the same JSON as the API
  // answers, frozen once published. The filters, the actions and the console's header are left
  // off the printout.
  async function pageBulletin(query) {
    const units = orgOptions(false).filter(([id]) => BULLETIN_LEVELS.includes(cache.units.get(id)?.level));
    const period = query.get('period') || lastMonth();
    const org = query.get('org') || (units.some(([id]) => id === cache.root) ? cache.root : units[0]?.[0]);
    const form = h(
      'form',
      {
        class: 'filters no-print',
        id: 'bulletin-form',
        onsubmit: (event) => {
          event.preventDefault();
          go('/bulletin', new FormData(form));
        },
      },
      field(t('bulletin_period'), h('input', { name: 'period', value: period, id: 'f-period', size: 8, placeholder: '2026-11' })),
      field(t('org'), select('org', units, org)),
      h('button', { type: 'submit' }, t('apply')),
    );
    const path = `/api/v1/bulletins/${encodeURIComponent(period)}?${new URLSearchParams({ org })}`;
    const b = await getJson(path);
    const message = h('p', { role: 'status', id: 'bulletin-status', class: 'no-print' });
    const act = (method, action, body) => async () => {
      try {
        await send(method, `/api/v1/bulletins/${encodeURIComponent(period)}/${action}`, body());
        flash = t(action === 'publish' ? 'bulletin_published' : 'bulletin_reissued');
        render();
      } catch (e) {
        message.replaceChildren(failure(e));
      }
    };
    const reason = h('input', { name: 'reason', id: 'f-reason', size: 30, placeholder: t('bulletin_reason') });
    const actions = h(
      'div',
      { class: 'actions no-print' },
      h('button', { type: 'button', id: 'bulletin-print', onclick: () => window.print() }, t('bulletin_print')),
      h(
        'button',
        {
          type: 'button',
          id: 'bulletin-xlsx',
          onclick: async () => {
            try {
              message.replaceChildren(t('export_done', { name: await download(`${path}&format=xlsx`, `bulletin-${period}.xlsx`) }));
            } catch (e) {
              message.replaceChildren(failure(e));
            }
          },
        },
        t('bulletin_xlsx'),
      ),
      canPublish() && b.state === 'draft'
        ? h('button', { type: 'button', id: 'bulletin-publish', onclick: act('POST', 'publish', () => ({ org })) }, t('bulletin_publish'))
        : null,
      canPublish() && b.state === 'published'
        ? [reason, h('button', { type: 'button', id: 'bulletin-reissue', onclick: act('POST', 'reissue', () => ({ org, reason: reason.value })) }, t('bulletin_reissue'))]
        : null,
    );
    return [form, actions, message, bulletinSheet(b)];
  }

  function bulletinSheet(b) {
    const state =
      b.state === 'draft'
        ? h('p', { class: 'draft-mark', id: 'bulletin-state' }, t('bulletin_draft', { at: fmtTime(b.computed_at) }))
        : h(
            'p',
            { class: 'muted', id: 'bulletin-state' },
            t('bulletin_revision', { revision: b.revision, at: fmtTime(b.published_at) }),
            b.reason ? ` ${t('bulletin_reason_was', { reason: b.reason })}` : '',
          );
    const rankings = b.rankings.map((r) =>
      h(
        'section',
        { class: 'bulletin-part', id: `bulletin-rank-${r.group}` },
        h('h2', {}, t('bulletin_ranking', { level: levelName(r.group) })),
        canvassChart({ units: r.units }),
        rankingTable(r),
        r.rule
          ? h(
              'p',
              { class: 'hint' },
              t('bulletin_rule', {
                cards: r.rule.yellow_cards,
                advanced: r.rule.advanced_within === null ? t('bulletin_no_bar') : t('bulletin_bar', { n: r.rule.advanced_within }),
              }),
              r.yellow_cards < r.rule.yellow_cards ? ` ${t('bulletin_cards_cut', { ranked: r.ranked, cards: r.yellow_cards })}` : '',
            )
          : null,
      ),
    );
    return h(
      'article',
      { class: 'bulletin', id: 'bulletin' },
      h('h1', {}, t('bulletin_heading', { org: b.org_name, period: periodText(b.period) })),
      h('p', { class: 'muted' }, t('bulletin_span', { from: b.from, to: b.to, previous: periodText(b.previous_period) })),
      state,
      rankings,
      h(
        'section',
        { class: 'bulletin-part', id: 'bulletin-disputes' },
        h('h2', {}, t('dash_disputes')),
        disputesTable(b.disputes),
        h(
          'p',
          { class: 'hint' },
          t('bulletin_disputes_before', {
            previous: periodText(b.previous_period),
            found: b.disputes_previous.total.found,
            share: fmtPercent(b.disputes_previous.total.resolved_in_village?.share),
          }),
        ),
      ),
      h(
        'section',
        { class: 'bulletin-part', id: 'bulletin-tasks' },
        h('h2', {}, t('bulletin_tasks')),
        table(
          [t('org'), t('bulletin_tasks_due'), t('bulletin_tasks_done'), t('bulletin_tasks_share')],
          b.tasks.map((u, i) =>
            h(
              'tr',
              {},
              h('td', {}, i === b.tasks.length - 1 ? `${u.name}（${t('dash_total')}）` : u.name),
              h('td', { class: 'num' }, u.due),
              h('td', { class: 'num' }, u.done),
              h('td', { class: 'num' }, fmtPercent(u.share)),
            ),
          ),
          { class: 'compact' },
        ),
      ),
      h(
        'section',
        { class: 'bulletin-part' },
        h('h2', {}, t('dash_drug')),
        drugTable(b.drug),
        h('p', { class: 'hint' }, t('dash_drug_small', { n: b.drug.suppressed_below, m: b.drug.suppressed_below - 1 })),
      ),
      h('section', { class: 'bulletin-part' }, h('h2', {}, t('dash_worries')), worriesChart(b.worries)),
      h('p', { class: 'hint' }, t('bulletin_few', { n: b.min_interviews })),
    );
  }

  function rankingTable(r) {
    const mark = (u) =>
      [u.few_interviews ? t('bulletin_too_few') : null, u.yellow_card ? t('bulletin_yellow') : null, u.advanced_barred ? t('bulletin_barred') : null]
        .filter(Boolean)
        .join('，');
    const estimate = (e) => (e ? `${fmtNumber(e.index)}（${fmtNumber(e.low)}–${fmtNumber(e.high)}）` : t('none'));
    const change = (c) => (c === null || c === undefined ? t('none') : `${c > 0 ? '+' : ''}${c.toFixed(1)}`);
    return table(
      [t('bulletin_rank'), t('org'), t('bulletin_interviews'), t('bulletin_satisfaction'), t('bulletin_safety'), t('bulletin_previous'), t('bulletin_change'), t('bulletin_marks')],
      r.units.map((u) =>
        h(
          'tr',
          { class: u.yellow_card ? 'yellow-card' : null },
          h('td', { class: 'num' }, u.rank ?? '—'),
          h('td', {}, u.name),
          h('td', { class: 'num' }, u.interviews),
          h('td', { class: 'num' }, estimate(u.satisfaction)),
          h('td', { class: 'num' }, u.safety ? fmtNumber(u.safety.index) : t('none')),
          h('td', { class: 'num' }, u.previous.satisfaction ? fmtNumber(u.previous.satisfaction.index) : t('none')),
          h('td', { class: 'num' }, change(u.change?.satisfaction)),
          h('td', {}, mark(u)),
        ),
      ),
      { class: 'compact' },
    );
  }

  // ---- forms (the schema registry) -----------------------------------------------------------

  // A form file's media type, by its extension: what POST /api/v1/schemas and /check take.
  const FORM_MEDIA_TYPES = new Map([
    ['json', 'application/json'],
    ['xlsx', 'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet'],
  ]);

  // Every version of every kind with what an admin may do to it; a form file checked or kept as
  // a draft; and a preview of the form checked, or of the stored version the address names
  // (`#/forms?kind=…&version=…`).
  async function pageForms(query) {
    const kind = query.get('kind');
    const version = query.get('version');
    const [versions, stored] = await Promise.all([
      getJson('/api/v1/schemas/versions'),
      // A version that is not there (a draft discarded elsewhere, say) is said where its preview
      // would be; the table still shows.
      kind && version
        ? getJson(`/api/v1/schemas/${encodeURIComponent(kind)}/${encodeURIComponent(version)}`).catch((e) => e)
        : null,
    ]);
    const outcome = h('section', { id: 'form-outcome', 'aria-live': 'polite' });
    if (stored instanceof Error) outcome.append(failure(stored));
    else if (stored) {
      const row = versions.find((v) => v.kind === stored.kind && v.version === stored.version);
      outcome.append(
        h(
          'h2',
          {},
          t('form_stored_preview', {
            name: label(stored.label),
            version: stored.version,
            state: row ? t(`form_state_${row.state}`) : t('none'),
          }),
        ),
        formPreview(stored),
      );
    }

    // A stored version below the table, drawn anew when it is the one shown already.
    const showStored = (v) => {
      const before = location.hash;
      go('/forms', new URLSearchParams({ kind: v.kind, version: String(v.version) }));
      if (location.hash === before) render();
    };

    const step = (v, what, method, path) =>
      h(
        'button',
        {
          type: 'button',
          class: `form-${what}`,
          onclick: async () => {
            if (!confirm(t(`confirm_form_${what}`, { name: label(v.label), version: v.version }))) return;
            try {
              await send(method, path);
              // Published, the kind labels reports and filters like the built-in ones.
              if (what === 'publish') await loadSchemas();
            } catch (e) {
              outcome.replaceChildren(formFailure(e));
              return;
            }
            flash = t(`form_${what}_done`, { name: label(v.label), version: v.version });
            if (what === 'discard' && kind === v.kind && version === String(v.version)) go('/forms');
            else render();
          },
        },
        t(`form_${what}`),
      );
    const rows = versions.map((v) => {
      const path = `/api/v1/schemas/${encodeURIComponent(v.kind)}/${v.version}`;
      const [by, at] = {
        draft: [v.created_by, v.created_at],
        published: [v.published_by, v.published_at],
        retired: [v.retired_by, v.retired_at],
      }[v.state] ?? [null, null];
      return h(
        'tr',
        { 'data-kind': v.kind, 'data-version': String(v.version), class: `state-${v.state}` },
        h('td', { class: 'nowrap' }, v.kind),
        h('td', {}, label(v.label)),
        h('td', { class: 'num' }, v.version),
        h('td', { class: 'state' }, t(`form_state_${v.state}`)),
        h('td', {}, I18N[lang][`form_source_${v.source}`] ? t(`form_source_${v.source}`) : v.source),
        h('td', {}, person(by)),
        h('td', { class: 'time' }, fmtTime(at)),
        h(
          'td',
          { class: 'actions' },
          h('a', { href: `#/forms?${new URLSearchParams({ kind: v.kind, version: String(v.version) })}`, class: 'form-preview' }, t('form_preview')),
          v.state === 'draft' ? step(v, 'publish', 'POST', `${path}/publish`) : null,
          v.state === 'published' ? step(v, 'retire', 'POST', `${path}/retire`) : null,
          v.state === 'draft' ? step(v, 'discard', 'DELETE', path) : null,
        ),
      );
    });

    const file = h('input', { type: 'file', id: 'form-file', name: 'file', accept: '.xlsx,.json' });
    // Sends the chosen file to `path`, typed by its extension; a refusal lists its problems.
    const submit = (path, done) => async () => {
      const chosen = file.files[0];
      const type = chosen && FORM_MEDIA_TYPES.get(/\.([^.]+)$/.exec(chosen.name)?.[1].toLowerCase());
      if (!type) {
        outcome.replaceChildren(h('p', { class: 'error', role: 'alert' }, t('form_pick_file')));
        return;
      }
      outcome.replaceChildren(h('p', { class: 'muted' }, t('loading')));
      let answer;
      try {
        answer = await send('POST', path, new Blob([chosen], { type }));
      } catch (e) {
        outcome.replaceChildren(formFailure(e));
        return;
      }
      done(answer, chosen.name);
    };
    const check = submit('/api/v1/schemas/check', (checked, name) => {
      const inForce = checked.versions_in_force;
      outcome.replaceChildren(
        h('h2', {}, t('form_checked', { name })),
        h(
          'p',
          { class: 'muted', id: 'form-in-force' },
          inForce.length ? t('form_in_force', { versions: inForce.join('、') }) : t('form_new_kind'),
        ),
        formPreview(checked.schema),
      );
    });
    const keep = submit('/api/v1/schemas', (kept) => {
      flash = t('form_keep_done', { name: label(kept.label), version: kept.version });
      showStored(kept);
    });

    return [
      h('h1', {}, t('forms_title')),
      h('p', { class: 'muted' }, t('forms_help')),
      table(
        [t('kind'), t('form_name'), t('form_version_col'), t('status'), t('form_source'), t('form_who'), t('form_when'), ''],
        rows,
        { id: 'form-versions' },
      ),
      h(
        'section',
        { class: 'form-upload', id: 'form-upload' },
        h('h2', {}, t('form_upload')),
        h('p', { class: 'muted' }, t('form_upload_help')),
        field(t('form_file'), file),
        h(
          'div',
          { class: 'actions' },
          h('button', { type: 'button', id: 'form-check', onclick: check }, t('form_check')),
          h('button', { type: 'button', id: 'form-keep', onclick: keep }, t('form_keep')),
        ),
      ),
      outcome,
    ];
  }

  // What a refused form or registry step says: each problem with its place in the workbook, or
  // the server's detail when it names none.
  function formFailure(e) {
    const problems = e instanceof ApiFailure ? e.formProblems : [];
    if (!problems.length) return failure(e);
    // The detail's first line sums the problems up; its other lines repeat them.
    const summary = e.message.split('\n')[0];
    return h(
      'div',
      { class: 'form-failure', role: 'alert' },
      h('p', { class: 'error' }, t('form_refused', { n: problems.length })),
      problems.some((p) => p.message === summary) ? null : h('p', {}, summary),
      h(
        'ol',
        { class: 'form-problems', id: 'form-problems' },
        problems.map((p) => h('li', {}, p.place ? h('span', { class: 'place' }, placeText(p.place)) : null, p.message)),
      ),
    );
  }

  // `survey!C3 (label::zh)`, the server's place of a workbook's problem, said in words.
  function placeText(place) {
    const m = /^(.+)!([A-Z]+\d+) \((.*)\)$/.exec(place);
    return m ? t('form_place', { sheet: m[1], cell: m[2], column: m[3] }) : place;
  }

  // A form as a phone draws it, in Chinese with the English beside: every field as the control a
  // worker fills in, inert here, with what the schema says about it.
  function formPreview(schema) {
    const assigned = schema.access?.mode === 'restricted' ? schema.fields.find((f) => f.id === schema.access.assigned_field) : null;
    const access = [
      schema.access?.mode === 'restricted'
        ? t('form_access_restricted', { field: label(assigned?.label) || schema.access.assigned_field })
        : t('form_access_scope'),
      schema.anonymous ? t('form_access_anonymous') : null,
    ];
    return h(
      'div',
      { class: 'phone', id: 'form-preview' },
      h('h3', { class: 'pv-title' }, schema.label.zh, h('span', { class: 'pv-en' }, schema.label.en)),
      h('p', { class: 'muted' }, `${schema.kind} · ${t('form_version', { n: schema.version })}`),
      h('ul', { class: 'pv-access', id: 'form-access' }, access.filter(Boolean).map((line) => h('li', {}, line))),
      h(
        'fieldset',
        { disabled: true },
        schema.fields.map((def) => previewField(def, schema.fields, 'f')),
        schema.log
          ? h(
              'section',
              { class: 'pv-log', id: 'form-preview-log' },
              h('h4', {}, schema.log.label.zh, h('span', { class: 'pv-en' }, schema.log.label.en)),
              h('p', { class: 'muted' }, t('form_log_help')),
              schema.log.fields.map((def) => previewField(def, schema.log.fields, 'log')),
              h('button', { type: 'button' }, t('form_log_add')),
            )
          : null,
      ),
    );
  }

  // One field: its labels and badges, its control, and the limits a phone enforces.
  function previewField(def, siblings, scope) {
    const id = `pv-${scope}-${def.id}`;
    const labelId = `${id}-label`;
    const condition = def.required_when;
    const on = condition && siblings.find((f) => f.id === condition.field);
    const hints = [
      condition
        ? t('form_required_when', {
            field: label(on?.label) || condition.field,
            values: condition.any_of.map((c) => label(on?.choices?.find((x) => x.id === c)?.label) || c).join(t('form_or')),
          })
        : null,
      def.max_len ? t('form_max_len', { n: def.max_len }) : null,
      ...numberHints(def),
      ...attachmentHints(def),
    ].filter(Boolean);
    return h(
      'div',
      { class: 'pv-field', 'data-field': def.id },
      h(
        'div',
        { class: 'pv-label' },
        h('span', { id: labelId }, def.label.zh),
        def.required ? h('span', { class: 'req', title: t('form_required') }, '*', h('span', { class: 'sr' }, t('form_required'))) : null,
        def.sensitive ? h('span', { class: 'badge sensitive', title: t('form_sensitive_help') }, t('form_sensitive')) : null,
        def.index
          ? h('span', { class: 'badge index' }, t('form_index', { name: I18N[lang][`index_${def.index}`] ? t(`index_${def.index}`) : def.index }))
          : null,
      ),
      h('div', { class: 'pv-en' }, def.label.en),
      def.hint ? h('p', { class: 'pv-hint' }, def.hint.zh, def.hint.en ? h('span', { class: 'pv-en' }, def.hint.en) : null) : null,
      previewControl(def, id, labelId),
      hints.length ? h('p', { class: 'hint' }, hints.join('；')) : null,
    );
  }

  function previewControl(def, id, labelId) {
    const named = { id, 'aria-labelledby': labelId };
    const options = (type, choices) =>
      h(
        'div',
        { class: 'pv-choices', role: 'group', 'aria-labelledby': labelId },
        choices.map(([value, zh, en]) =>
          h('label', {}, h('input', { type, name: id, value }), h('span', {}, zh), en ? h('span', { class: 'pv-en' }, en) : null),
        ),
      );
    const choices = def.choices.map((c) => [c.id, c.label.zh, c.label.en]);
    switch (def.type) {
      case 'text':
        return def.max_len > 100 ? h('textarea', { ...named, rows: 3 }) : h('input', { ...named, type: 'text' });
      case 'integer':
      case 'decimal':
        return h('input', { ...named, type: 'number', min: def.min ?? null, max: def.max ?? null, step: def.type === 'integer' ? 1 : 'any' });
      case 'date':
        return h('input', { ...named, type: 'date' });
      case 'datetime':
        return h('input', { ...named, type: 'datetime-local' });
      case 'boolean':
        return options('radio', [['true', t('yes')], ['false', t('no')]]);
      case 'single_choice':
        return options('radio', choices);
      case 'multiple_choice':
        return options('checkbox', choices);
      case 'location':
        return h('button', { ...named, type: 'button' }, t('form_location'));
      case 'person_ref':
        return h('select', named, h('option', {}, t('form_person')));
      case 'attachment':
        return h('button', { ...named, type: 'button' }, t('form_attach'));
      default:
        // A type newer than this console: a text box, which is how its value reads anyway.
        return h('input', { ...named, type: 'text' });
    }
  }

  function numberHints(def) {
    if (def.type !== 'integer' && def.type !== 'decimal') return [];
    const has = (n) => n !== null && n !== undefined;
    const range = has(def.min) && has(def.max)
      ? t('form_range', { min: def.min, max: def.max })
      : has(def.min)
        ? t('form_min', { min: def.min })
        : has(def.max)
          ? t('form_max', { max: def.max })
          : null;
    return [def.type === 'integer' ? t('form_integer') : t('form_decimal'), range];
  }

  function attachmentHints(def) {
    if (def.type !== 'attachment') return [];
    const mib = def.max_size ? def.max_size / (1024 * 1024) : null;
    return [
      def.media_types?.length ? t('form_media_types', { types: def.media_types.join('、') }) : null,
      mib ? t('form_max_size', { size: Number.isInteger(mib) ? mib : mib.toFixed(1) }) : null,
    ];
  }

  // ---- live updates --------------------------------------------------------------------------

  // The server pokes the console over /api/v1/live when the caller's scope gained changes; the
  // page showing server data is then drawn again, unless someone is typing in it. A server
  // without the endpoint just means no pokes: retries back off to once every five minutes.
  const live = { socket: null, timer: null, delay: 5, redraw: null };

  function connectLive() {
    clearTimeout(live.timer);
    if (!session.access || live.socket) return;
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const socket = new WebSocket(`${scheme}//${location.host}/api/v1/live?access_token=${encodeURIComponent(session.access)}`);
    live.socket = socket;
    socket.onopen = () => {
      live.delay = 5;
    };
    socket.onmessage = (event) => {
      let message = null;
      try {
        message = JSON.parse(event.data);
      } catch {
        return;
      }
      if (message?.type === 'changed') {
        clearTimeout(live.redraw);
        live.redraw = setTimeout(redrawForChanges, 500);
      }
    };
    socket.onclose = () => {
      live.socket = null;
      if (!session.access) return;
      live.timer = setTimeout(connectLive, live.delay * 1000);
      live.delay = Math.min(live.delay * 2, 300);
    };
  }

  function disconnectLive() {
    clearTimeout(live.timer);
    const socket = live.socket;
    live.socket = null;
    socket?.close();
  }

  function redrawForChanges() {
    const section = route().path.split('/')[1];
    const typing = document.activeElement?.matches('input, select, textarea');
    if (!typing && ['dashboard', 'reports', 'conflicts'].includes(section)) render();
  }

  // ---- start ---------------------------------------------------------------------------------

  window.addEventListener('hashchange', render);
  (async () => {
    // A reload keeps the session of this tab: the refresh token survives in sessionStorage.
    if (sessionStorage.getItem(REFRESH_KEY) && (await refresh())) {
      try {
        await loadSession();
      } catch {
        endSession();
        return;
      }
    }
    render();
  })();
})();
