// An application's back-channel logout endpoint (Back-Channel Logout 1.0): it
// listens on a loopback port (the first line gives its URI), verifies every
// logout_token POSTed to it with jose against fedhub's JWKS (found by
// openid-client's discovery, once fedhub is up): typ logout+jwt, issuer,
// audience, the back-channel logout event, a sid and no nonce (§2.6); then a
// line per token: {"sid", "sub", "jti"}, or {"refused"} and a 400.
//
// FEDHUB_URL (fedhub need not be up yet), CLIENT_ID.
import { connect, keys, need, report, run, issuer } from './lib.mjs';
import { createServer } from 'node:http';
import { once } from 'node:events';
import { jwtVerify } from 'jose';

const event = 'http://schemas.openid.net/event/backchannel-logout';

run(async () => {
  const clientId = need('CLIENT_ID');
  let jwks;
  const verify = async (token) => {
    jwks ??= keys(await connect(clientId));
    const { payload } = await jwtVerify(token, jwks, {
      issuer,
      audience: clientId,
      typ: 'logout+jwt',
      requiredClaims: ['iat', 'exp', 'jti', 'sub', 'sid', 'events'],
    });
    if (typeof payload.events?.[event] !== 'object' || 'nonce' in payload) {
      throw new Error(`not a logout token: ${JSON.stringify(payload)}`);
    }
    return payload;
  };
  const server = createServer(async (req, res) => {
    let body = '';
    for await (const chunk of req) {
      body += chunk;
    }
    try {
      if (req.method !== 'POST' || !req.headers['content-type']?.startsWith('application/x-www-form-urlencoded')) {
        throw new Error(`${req.method} ${req.headers['content-type']}`);
      }
      const { sid, sub, jti } = await verify(new URLSearchParams(body).get('logout_token'));
      report({ sid, sub, jti });
      res.writeHead(200).end();
    } catch (e) {
      report({ refused: String(e) });
      res.writeHead(400).end();
    }
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  report({ uri: `http://127.0.0.1:${server.address().port}/backchannel-logout` });
});
