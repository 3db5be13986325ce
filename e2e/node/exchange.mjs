// Token exchange (RFC 8693) through openid-client's genericGrantRequest: the
// web client exchanges the user's access token for one meant for the orders
// API, which exchanges that for one meant for billing; a wider scope and an
// audience the web client may not ask for are refused. The exchanged tokens
// are verified against fedhub's JWKS.
//
// FEDHUB_URL, SUBJECT_TOKEN (the user's access token, issued to the web
// client), WEB_ID, WEB_SECRET, ORDERS_ID, ORDERS_SECRET.
import { connect, keys, need, refusal, report, run, issuer } from './lib.mjs';
import * as client from 'openid-client';
import { jwtVerify } from 'jose';

const accessToken = 'urn:ietf:params:oauth:token-type:access_token';

function exchange(config, subject, audience, scope) {
  return client.genericGrantRequest(config, 'urn:ietf:params:oauth:grant-type:token-exchange', {
    subject_token: subject,
    subject_token_type: accessToken,
    requested_token_type: accessToken,
    audience,
    ...(scope && { scope }),
  });
}

run(async () => {
  const web = await connect(need('WEB_ID'), undefined, need('WEB_SECRET'));
  const orders = await connect(need('ORDERS_ID'), undefined, need('ORDERS_SECRET'));
  const jwks = keys(web);
  const subject = need('SUBJECT_TOKEN');

  const toOrders = await exchange(web, subject, 'te-orders');
  const toBilling = await exchange(orders, toOrders.access_token, 'te-billing', 'openid');
  const verify = async (token, audience) => (await jwtVerify(token, jwks, { issuer, audience })).payload;
  report({
    to_orders: {
      issued_token_type: toOrders.issued_token_type,
      token_type: toOrders.token_type,
      claims: await verify(toOrders.access_token, 'te-orders'),
    },
    to_billing: { claims: await verify(toBilling.access_token, 'te-billing') },
    wider_scope: await refusal(exchange(web, subject, 'te-orders', 'openid profile email')),
    other_audience: await refusal(exchange(web, subject, 'te-billing')),
  });
});
