// A real OpenID Connect provider for edgefleet's sign-in tests: panva's oidc-provider, certified by the OpenID
// Foundation, with one static client and an account store that carries each person's groups. Started by
// tests/support/oidc_provider.py as `node provider.js CONFIG.json`; it listens on a free 127.0.0.1 port and
// prints {"issuer": "http://127.0.0.1:PORT"} as its first line once it serves.
//
// CONFIG.json: {"client": {"client_id", "client_secret", "redirect_uris": [...]},
//               "accounts": {"alice": {"password": "...", "groups": ["..."], "email": "..."}}}
//
// The login page is a plain HTML form (no JavaScript), so that httpx and Chromium drive the same page. Consent
// is granted at once: the client is the company's own console, as an administrator would configure it.
import http from 'node:http';
import { readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import Provider from 'oidc-provider';

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const accounts = config.accounts;
const SCOPES = 'openid profile email groups';

function escape(text) {
  return String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function loginPage(uid, message) {
  return `<!doctype html><html><head><meta charset="utf-8"><title>Company sign-in</title></head><body>
<h1>Company sign-in</h1>${message ? `<p id="error">${escape(message)}</p>` : ''}
<form method="post" action="/interaction/${escape(uid)}/login">
<label>User <input name="login" id="login" autocomplete="username"></label>
<label>Password <input name="password" id="password" type="password"></label>
<button type="submit" id="submit">Sign in</button></form></body></html>`;
}

async function readForm(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

let provider;

async function interaction(req, res, uid, isLogin) {
  const details = await provider.interactionDetails(req, res);
  if (details.uid !== uid) throw new Error('interaction mismatch');
  if (!isLogin) {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end(loginPage(uid));
    return;
  }
  const form = await readForm(req);
  const login = form.get('login') || '';
  const account = accounts[login];
  if (!account || account.password !== form.get('password')) {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end(loginPage(uid, 'wrong user or password'));
    return;
  }
  await provider.interactionFinished(req, res, { login: { accountId: login } }, { mergeWithLastSubmission: false });
}

const server = http.createServer((req, res) => {
  const found = /^\/interaction\/([^/]+)(\/login)?$/.exec(req.url.split('?')[0]);
  if (found) {
    const isLogin = Boolean(found[2]) && req.method === 'POST';
    interaction(req, res, found[1], isLogin).catch((err) => {
      res.writeHead(400, { 'content-type': 'text/plain' });
      res.end(`interaction failed: ${err.message}`);
    });
    return;
  }
  provider.callback()(req, res);
});

server.listen(0, '127.0.0.1', () => {
  const issuer = `http://127.0.0.1:${server.address().port}`;
  provider = new Provider(issuer, {
    clients: [
      {
        client_id: config.client.client_id,
        client_secret: config.client.client_secret,
        redirect_uris: config.client.redirect_uris,
        grant_types: ['authorization_code'],
        response_types: ['code'],
        token_endpoint_auth_method: 'client_secret_basic',
      },
    ],
    // Every authorization request must carry a PKCE S256 challenge (the only method this provider takes).
    pkce: { required: () => true },
    scopes: SCOPES.split(' '),
    claims: {
      openid: ['sub'],
      profile: ['name', 'preferred_username'],
      email: ['email'],
      groups: ['groups'],
    },
    // The ID token carries the scopes' claims, groups included, as company providers configure it for SSO.
    conformIdTokenClaims: false,
    async findAccount(ctx, id) {
      const account = accounts[id];
      if (!account) return undefined;
      return {
        accountId: id,
        async claims() {
          return { sub: id, preferred_username: id, name: id, email: account.email, groups: account.groups || [] };
        },
      };
    },
    async loadExistingGrant(ctx) {
      const grantId = ctx.oidc.result?.consent?.grantId || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
      if (grantId) return ctx.oidc.provider.Grant.find(grantId);
      const grant = new ctx.oidc.provider.Grant({ clientId: ctx.oidc.client.clientId, accountId: ctx.oidc.session.accountId });
      grant.addOIDCScope(SCOPES);
      await grant.save();
      return grant;
    },
    interactions: { url: (ctx, details) => `/interaction/${details.uid}` },
    features: { devInteractions: { enabled: false } },
    cookies: { keys: [randomBytes(32).toString('hex')] },
    jwks: undefined,
  });
  process.stdout.write(`${JSON.stringify({ issuer })}\n`);
});
