// Client scopes and APIs as audiences seen by openid-client: alice signs in
// (the Go test drives the browser) through the code flow with PKCE, once per
// scope asked for, and the scenario reports the claims of the ID token
// (openid-client validates it), of the access token (jose verifies it against
// fedhub's JWKS), of userinfo and of introspection; then a resource parameter
// for an API the client may get, and one for an API it may not get, at the
// authorization endpoint and in a refresh.
//
// FEDHUB_URL, CLIENT_ID, CLIENT_SECRET, REDIRECT_URI, SCOPES (a JSON list of
// scope strings), API (the client's API), OTHER_API (another client's).
import { connect, keys, need, refusal, report, run, signIn, issuer } from './lib.mjs';
import * as client from 'openid-client';
import { jwtVerify } from 'jose';

run(async () => {
  const config = await connect(need('CLIENT_ID'), undefined, need('CLIENT_SECRET'));
  const jwks = keys(config);
  const redirect_uri = need('REDIRECT_URI');
  const api = need('API');
  const otherApi = need('OTHER_API');

  const scopes = [];
  for (const scope of JSON.parse(need('SCOPES'))) {
    const tokens = await signIn(config, { redirect_uri, scope });
    const idToken = tokens.claims();
    scopes.push({
      scope: tokens.scope,
      id_token: idToken,
      access_token: (await jwtVerify(tokens.access_token, jwks, { issuer })).payload,
      userinfo: await client.fetchUserInfo(config, tokens.access_token, idToken.sub),
      introspection: await client.tokenIntrospection(config, tokens.access_token),
    });
  }

  const forApi = await signIn(config, { redirect_uri, scope: 'openid', resource: api });
  report({
    scopes,
    resource: {
      id_token: forApi.claims(),
      access_token: (await jwtVerify(forApi.access_token, jwks, { issuer, audience: api })).payload,
    },
    refresh_other_api: await refusal(client.refreshTokenGrant(config, forApi.refresh_token, { resource: otherApi })),
    other_api: await refusal(signIn(config, { redirect_uri, scope: 'openid', resource: otherApi })),
  });
});
