// A real OpenID Connect provider for the sign-in tests: the certified `oidc-provider` package,
// in-memory storage, a static account list, and a one-field login form that a test drives over
// plain HTTP (no browser needed). Loopback only; never a production identity provider.
//
//   node tests/oidc_provider/server.mjs --port 0 --client-id locker \
//        --client-secret "$SECRET" --redirect-uri http://testserver/login/oidc/callback \
//        --accounts accounts.json
//
// accounts.json maps each account id (the `sub`) to its claims, e.g.
//   {"a1": {"preferred_username": "officer1", "name": "PC 1001"}}
// The client secret can also come from the OIDC_CLIENT_SECRET environment variable, so that it
// stays off the command line. Once listening, the server prints one line to stdout:
//   {"issuer": "http://127.0.0.1:PORT"}
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import { parseArgs } from 'node:util';

import Provider from 'oidc-provider';

const { values: args } = parseArgs({
  options: {
    port: { type: 'string', default: '0' },
    'client-id': { type: 'string' },
    'client-secret': { type: 'string' },
    'redirect-uri': { type: 'string', multiple: true },
    accounts: { type: 'string' },
  },
});
const clientSecret = args['client-secret'] ?? process.env.OIDC_CLIENT_SECRET;
if (!args['client-id'] || !clientSecret || !args['redirect-uri'] || !args.accounts) {
  console.error('usage: server.mjs --port P --client-id ID --client-secret S '
    + '--redirect-uri URI [--redirect-uri URI ...] --accounts FILE');
  process.exit(2);
}
// Read at every look-up, so a test can rename an account at the "IdP" while it runs.
const accounts = () => JSON.parse(readFileSync(args.accounts, 'utf8'));

const escape = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function readForm(req) {
  return new Promise((resolve, reject) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk) => {
      body += chunk;
      if (body.length > 10_000) reject(new Error('form too large'));
    });
    req.on('end', () => resolve(new URLSearchParams(body)));
    req.on('error', reject);
  });
}

const server = http.createServer();
server.listen(Number(args.port), '127.0.0.1', () => {
  const issuer = `http://127.0.0.1:${server.address().port}`;
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const provider = new Provider(issuer, {
    clients: [{
      client_id: args['client-id'],
      client_secret: clientSecret,
      redirect_uris: args['redirect-uri'],
      response_types: ['code'],
      grant_types: ['authorization_code'],
      token_endpoint_auth_method: 'client_secret_basic',
    }],
    // Every client must use PKCE here, so a relying party that forgets it fails the tests.
    pkce: { required: () => true },
    claims: {
      openid: ['sub'],
      profile: ['preferred_username', 'name', 'collar_number'],
    },
    features: { devInteractions: { enabled: false } },
    interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
    cookies: { keys: [randomBytes(32).toString('hex')] },
    jwks: { keys: [{ ...privateKey.export({ format: 'jwk' }), kid: 'test', use: 'sig', alg: 'RS256' }] },
    async findAccount(ctx, id) {
      if (!Object.hasOwn(accounts(), id)) return undefined;
      return { accountId: id, claims: async () => ({ ...accounts()[id], sub: id }) };
    },
  });
  const callback = provider.callback();

  // The interaction: GET shows a form naming the account; POST login=<account id> signs that
  // account in and grants the scopes asked for, as a user pressing "Sign in" and "Allow" would.
  server.on('request', async (req, res) => {
    const match = /^\/interaction\/([\w-]+)$/.exec(req.url.split('?')[0]);
    if (!match) {
      callback(req, res);
      return;
    }
    try {
      const details = await provider.interactionDetails(req, res);
      if (req.method === 'GET') {
        res.setHeader('Content-Type', 'text/html; charset=utf-8');
        res.end(`<!doctype html><title>Test IdP sign-in</title>
<form method="post" action="/interaction/${escape(details.uid)}">
<label>Account <input name="login"></label><button>Sign in</button></form>`);
        return;
      }
      const form = await readForm(req);
      const accountId = form.get('login') ?? '';
      if (!Object.hasOwn(accounts(), accountId)) {
        res.statusCode = 400;
        res.end('unknown account');
        return;
      }
      const { params } = details;
      const grant = new provider.Grant({ accountId, clientId: params.client_id });
      grant.addOIDCScope(params.scope);
      const grantId = await grant.save();
      await provider.interactionFinished(req, res, {
        login: { accountId },
        consent: { grantId },
      }, { mergeWithLastSubmission: false });
    } catch (err) {
      res.statusCode = 400;
      res.end(`interaction failed: ${err.message}`);
    }
  });
  process.stdout.write(`${JSON.stringify({ issuer })}\n`);
});

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => server.close(() => process.exit(0)));
}
