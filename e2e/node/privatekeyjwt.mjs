// private_key_jwt (RFC 7523) through openid-client's PrivateKeyJwt: client
// credentials and introspection succeed; the first assertion sent again and
// one for another audience are refused.
//
// FEDHUB_URL, CLIENT_ID, CLIENT_KEY (PKCS#8 PEM, RS256) and CLIENT_KID.
import { connect, need, refusal, report, run } from './lib.mjs';
import * as client from 'openid-client';
import { decodeJwt, importPKCS8 } from 'jose';

run(async () => {
  const key = { key: await importPKCS8(need('CLIENT_KEY'), 'RS256'), kid: need('CLIENT_KID') };
  const config = await connect(need('CLIENT_ID'), client.PrivateKeyJwt(key));
  const sent = []; // the assertions openid-client made
  let replay; // the assertion to send instead of a fresh one
  config[client.customFetch] = (url, options) => {
    const body = new URLSearchParams(options.body);
    sent.push(body.get('client_assertion'));
    if (replay) {
      body.set('client_assertion', replay);
      options = { ...options, body };
    }
    return fetch(url, options);
  };

  const tokens = await client.clientCredentialsGrant(config);
  const introspection = await client.tokenIntrospection(config, tokens.access_token);
  replay = sent[0];
  const replayed = await refusal(client.clientCredentialsGrant(config));

  const elsewhere = new client.Configuration(config.serverMetadata(), need('CLIENT_ID'), undefined,
    client.PrivateKeyJwt(key, { [client.modifyAssertion]: (header, payload) => { payload.aud = 'https://other.example.com'; } }));
  client.allowInsecureRequests(elsewhere);
  const wrongAudience = await refusal(client.clientCredentialsGrant(elsewhere));

  report({
    access_token: decodeJwt(tokens.access_token),
    introspection,
    assertions: sent.slice(0, 2).map((a) => decodeJwt(a)),
    replayed,
    wrong_audience: wrongAudience,
  });
});
