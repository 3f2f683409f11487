// A certified OpenID Connect provider (panva's oidc-provider) for the end-to-end tests.
// Listens on 127.0.0.1 (any free port), prints "READY <issuer>" and serves until killed.
// Its built-in development login and consent pages accept any login and password.
// The RFC 8628 device flow is on (features.deviceFlow), for the device clients
// `device-public` (no secret) and `device-conf` (CLIENT_SECRET, client_secret_basic).
//
// Environment: CLIENT_ID, CLIENT_SECRET, REDIRECT_URIS (comma-separated);
// DEVICE_CODE_TTL (seconds a device code lives, default 600); SLOW_DOWN=1 answers
// slow_down to a device code polled again within SLOW_DOWN_INTERVAL seconds (default 5):
// oidc-provider never sends slow_down by itself, so the tests of it add this.
import http from 'node:http';
import Provider from 'oidc-provider';

const { CLIENT_ID, CLIENT_SECRET, REDIRECT_URIS } = process.env;
const DEVICE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code';
const DEVICE_CODE_TTL = Number(process.env.DEVICE_CODE_TTL || 600);
const SLOW_DOWN_INTERVAL = Number(process.env.SLOW_DOWN_INTERVAL || 5);
const device = { grant_types: [DEVICE_GRANT, 'refresh_token'], response_types: [], redirect_uris: [] };
// The built-in device pages @import Google Fonts; Chromium here has no network. Same forms.
const page = (title, body) => `<!DOCTYPE html><html><head><meta charset="utf-8"><title>${title}</title></head>
<body><h1>${title}</h1>${body}</body></html>`;

const server = http.createServer();
server.listen(0, '127.0.0.1', () => {
  const issuer = `http://127.0.0.1:${server.address().port}`;
  const provider = new Provider(issuer, {
    clients: [{
      client_id: CLIENT_ID,
      client_secret: CLIENT_SECRET,
      // RFC 8252: a native app's loopback redirect over plain http.
      application_type: 'native',
      redirect_uris: REDIRECT_URIS.split(','),
      grant_types: ['authorization_code', 'refresh_token', 'client_credentials'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
    }, {
      client_id: 'device-public', application_type: 'native', token_endpoint_auth_method: 'none',
      ...device,
    }, {
      client_id: 'device-conf', client_secret: CLIENT_SECRET,
      token_endpoint_auth_method: 'client_secret_basic', ...device,
    }],
    features: {
      clientCredentials: { enabled: true },
      revocation: { enabled: true },
      introspection: { enabled: true }, // lets the tests ask whether a token still works
      devInteractions: { enabled: true },
      deviceFlow: {
        enabled: true,
        userCodeInputSource: (ctx, form, out, err) => {
          let msg = '<p>Enter the code displayed on your device</p>';
          if (err && err.name === 'AbortedError') msg = '<p>The Sign-in request was interrupted</p>';
          else if (err) msg = '<p>The code you entered is incorrect. Try again</p>';
          ctx.body = page('Sign-in', `${msg}${form}<button type="submit" form="op.deviceInputForm">Continue</button>`);
        },
        userCodeConfirmSource: (ctx, form, client, deviceInfo, userCode) => {
          ctx.body = page('Confirm Device', `<p>${client.clientId}: <code>${userCode}</code></p>${form}
<button autofocus type="submit" form="op.deviceConfirmForm">Continue</button>
<button type="submit" form="op.deviceConfirmForm" value="yes" name="abort">[ Abort ]</button>`);
        },
        successSource: (ctx) => { ctx.body = page('Sign-in Success', '<p>You can now close this page.</p>'); },
      },
    },
    ttl: { DeviceCode: () => DEVICE_CODE_TTL },
    pkce: { required: () => true },
    rotateRefreshToken: true,
    scopes: ['openid', 'offline_access', 'api'],
    cookies: { keys: ['loopback-login-e2e-only'] },
    findAccount: (ctx, id) => ({ accountId: id, claims: () => ({ sub: id }) }),
  });
  if (process.env.SLOW_DOWN === '1') {
    const lastPoll = new Map();
    provider.use(async (ctx, next) => {
      if (ctx.method === 'POST' && ctx.path === '/token') {
        const chunks = [];
        for await (const chunk of ctx.req) chunks.push(chunk);
        // oidc-provider finds the stream read and takes req.body (lib/shared/selective_body.js).
        ctx.req.body = Buffer.concat(chunks).toString();
        const form = new URLSearchParams(ctx.req.body);
        if (form.get('grant_type') === DEVICE_GRANT) {
          const code = form.get('device_code');
          const last = lastPoll.get(code);
          lastPoll.set(code, Date.now());
          if (last !== undefined && Date.now() - last < SLOW_DOWN_INTERVAL * 1000) {
            ctx.status = 400;
            ctx.body = { error: 'slow_down' };
            return;
          }
        }
      }
      await next();
    });
  }
  server.on('request', provider.callback());
  console.log(`READY ${issuer}`);
});

process.on('SIGTERM', () => server.close(() => process.exit(0)));
