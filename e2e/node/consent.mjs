// A third-party application on openid-client: the code flow with PKCE leads
// the person to fedhub's consent page (the Go test allows it in Chromium), then
// the code is exchanged for tokens; signing in again, the consent is
// remembered. jose verifies the ID token against fedhub's JWKS.
//
// FEDHUB_URL, CLIENT_ID, CLIENT_SECRET, REDIRECT_URI, SCOPE.
import { connect, keys, need, report, run, signIn, issuer } from './lib.mjs';
import { jwtVerify } from 'jose';

run(async () => {
  const clientId = need('CLIENT_ID');
  const config = await connect(clientId, undefined, need('CLIENT_SECRET'));
  const parameters = { redirect_uri: need('REDIRECT_URI'), scope: need('SCOPE') };
  const allowed = await signIn(config, parameters);
  const again = await signIn(config, parameters);
  const verify = async (token) => (await jwtVerify(token, keys(config), { issuer, audience: clientId })).payload;
  report({
    allowed: { scope: allowed.scope, id_token: allowed.claims(), id_token_verified: await verify(allowed.id_token) },
    again: { scope: again.scope, id_token: again.claims() },
  });
});
