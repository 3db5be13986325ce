// The device authorization grant (RFC 8628) as a CLI does it with
// openid-client: a first line with the user code for the person (the Go test
// types it in Chromium), then polling until the tokens come; openid-client
// validates the ID token's claims, jose its signature against fedhub's JWKS.
//
// FEDHUB_URL, CLIENT_ID (a public client).
import { connect, keys, need, report, run, issuer } from './lib.mjs';
import * as client from 'openid-client';
import { jwtVerify } from 'jose';

run(async () => {
  const config = await connect(need('CLIENT_ID'), client.None());
  const device = await client.initiateDeviceAuthorization(config, { scope: 'openid profile offline_access' });
  report({
    user_code: device.user_code,
    verification_uri: device.verification_uri,
    interval: device.interval,
    expires_in: device.expires_in,
  });
  const tokens = await client.pollDeviceAuthorizationGrant(config, device);
  const { payload } = await jwtVerify(tokens.id_token, keys(config), { issuer, audience: need('CLIENT_ID') });
  report({
    id_token: tokens.claims(),
    id_token_verified: payload,
    refresh_token: Boolean(tokens.refresh_token),
    token_type: tokens.token_type,
  });
});
