// What the scenarios share: the fedhub they talk to (FEDHUB_URL), a line of JSON
// per result on stdout, and the exit status. Import it first: Debian 12's Node 18
// (openid-client's baseline is 20) has WebCrypto only in node:crypto, where
// openid-client and jose need it global.
import { webcrypto } from 'node:crypto';
import { createInterface } from 'node:readline';

globalThis.crypto ??= webcrypto;
globalThis.CryptoKey ??= webcrypto.CryptoKey;

const client = await import('openid-client');
const { createRemoteJWKSet } = await import('jose');

// need returns the environment variable name, which the Go test must set.
export function need(name) {
  const value = process.env[name];
  if (!value) {
    throw new Error(`${name} is not set`);
  }
  return value;
}

export const issuer = need('FEDHUB_URL');

// connect discovers fedhub (plain HTTP on loopback, which openid-client allows
// only when asked) as the client clientId authenticating with auth.
export function connect(clientId, auth, metadata) {
  return client.discovery(new URL(issuer), clientId, metadata, auth, {
    execute: [client.allowInsecureRequests],
  });
}

// keys is fedhub's JWKS, from the jwks_uri its discovery document names.
export function keys(config) {
  return createRemoteJWKSet(new URL(config.serverMetadata().jwks_uri));
}

// refusal is the OAuth error that request ends with (an error response of an
// endpoint, with its status, or an authorization response); a request that
// succeeds or fails otherwise is the scenario's failure.
export async function refusal(request) {
  try {
    await request;
  } catch (e) {
    if (e instanceof client.ResponseBodyError) {
      return { status: e.status, error: e.error };
    }
    if (e instanceof client.AuthorizationResponseError) {
      return { error: e.error };
    }
    throw e;
  }
  throw new Error('the request was accepted, want it refused');
}

// report writes one result line.
export function report(result) {
  process.stdout.write(JSON.stringify(result) + '\n');
}

// answers are the lines the Go test writes on stdin, read once a scenario asks.
let answers, nextAnswer;

// ask writes question as a result line and returns the Go test's answer, its
// next line on stdin.
export async function ask(question) {
  answers ??= createInterface({ input: process.stdin });
  nextAnswer ??= answers[Symbol.asyncIterator]();
  report(question);
  const { value, done } = await nextAnswer.next();
  if (done) {
    throw new Error('stdin closed before the answer');
  }
  return JSON.parse(value);
}

// signIn is openid-client's code flow with PKCE, state and nonce: the Go test
// answers the authorization URL it is asked about (the person signs in) with
// the URL the browser was sent back to, whose code is exchanged for tokens.
export async function signIn(config, parameters) {
  const verifier = client.randomPKCECodeVerifier();
  const state = client.randomState();
  const nonce = client.randomNonce();
  const url = client.buildAuthorizationUrl(config, {
    ...parameters,
    code_challenge: await client.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    state,
    nonce,
  });
  const { callback } = await ask({ authorize: url.href });
  return client.authorizationCodeGrant(config, new URL(callback), {
    pkceCodeVerifier: verifier,
    expectedState: state,
    expectedNonce: nonce,
  });
}

// run runs a scenario: its failure is a line {"error": …} and exit status 1.
export function run(scenario) {
  scenario().then(() => answers?.close(), (e) => {
    report({ error: String(e?.stack ?? e), cause: e?.cause && String(e.cause.message ?? e.cause) });
    process.exit(1);
  });
}
