// A certified OpenID Connect provider (panva's oidc-provider) for the end-to-end tests.
// Listens on 127.0.0.1 (any free port), prints "READY <issuer>" and serves until killed.
// Its built-in development login and consent pages accept any login and password.
//
// Environment: CLIENT_ID, CLIENT_SECRET, REDIRECT_URIS (comma-separated).
import http from 'node:http';
import Provider from 'oidc-provider';

const { CLIENT_ID, CLIENT_SECRET, REDIRECT_URIS } = process.env;

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
    }],
    features: {
      clientCredentials: { enabled: true },
      revocation: { enabled: true },
      introspection: { enabled: true }, // lets the tests ask whether a token still works
      devInteractions: { enabled: true },
    },
    pkce: { required: () => true },
    rotateRefreshToken: true,
    scopes: ['openid', 'offline_access', 'api'],
    cookies: { keys: ['loopback-login-e2e-only'] },
    findAccount: (ctx, id) => ({ accountId: id, claims: () => ({ sub: id }) }),
  });
  server.on('request', provider.callback());
  console.log(`READY ${issuer}`);
});

process.on('SIGTERM', () => server.close(() => process.exit(0)));
