// The certified OpenID provider (panva's oidc-provider) with dynamic client registration
// (RFC 7591) and resource indicators (RFC 8707) turned on, for the `--resource` tests.
// Listens on 127.0.0.1 (any free port), prints "READY <issuer>" and serves until killed.
// No client is configured: clients register themselves. Its development login and
// consent pages accept any login and password.
//
// Environment: RESOURCE, the one API it issues access tokens for (JWTs whose `aud` is it).
import http from 'node:http';
import Provider, { errors } from 'oidc-provider';

const { RESOURCE } = process.env;

const server = http.createServer();
server.listen(0, '127.0.0.1', () => {
  const issuer = `http://127.0.0.1:${server.address().port}`;
  const provider = new Provider(issuer, {
    features: {
      devInteractions: { enabled: true },
      registration: { enabled: true },
      resourceIndicators: {
        enabled: true,
        // A token request without `resource` gets no access token for the API.
        defaultResource: () => undefined,
        useGrantedResource: () => true,
        getResourceServerInfo: (ctx, resourceIndicator) => {
          if (resourceIndicator !== RESOURCE) throw new errors.InvalidTarget();
          return {
            scope: 'api',
            audience: RESOURCE,
            accessTokenFormat: 'jwt',
            accessTokenTTL: 3600,
            jwt: { sign: { alg: 'RS256' } },
          };
        },
      },
    },
    pkce: { required: () => true },
    rotateRefreshToken: true,
    // As its documentation shows for resource servers: the API's scope is the resource
    // server's (above), not a server-wide scope, so a registration asking for it is
    // refused (invalid_client_metadata); the authorize request asks for it instead.
    scopes: ['openid', 'offline_access'],
    cookies: { keys: ['loopback-login-e2e-only'] },
    findAccount: (ctx, id) => ({ accountId: id, claims: () => ({ sub: id }) }),
  });
  server.on('request', provider.callback());
  console.log(`READY ${issuer}`);
});

process.on('SIGTERM', () => server.close(() => process.exit(0)));
