package passkey

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"slices"
	"testing"

	"github.com/fxamacker/cbor/v2"
)

// This file is a software authenticator and the browser around it: it answers the options
// the Service hands out the way navigator.credentials.create and .get would, with "none"
// attestation and an ECDSA P-256 (ES256) key, and can be told to lie (answer).

const (
	flagUP = 0x01 // user present
	flagUV = 0x04 // user verified
	flagBE = 0x08 // backup eligible
	flagBS = 0x10 // backed up
	flagAT = 0x40 // attested credential data included
)

var b64 = base64.RawURLEncoding

// authenticator holds one credential.
type authenticator struct {
	key    *ecdsa.PrivateKey
	id     []byte // credential ID
	aaguid []byte
	handle []byte // the user handle given at registration
	count  uint32 // the sign counter; every assertion increments it unless zeroCounter
	// zeroCounter: an authenticator that keeps no counter (always 0), like many passkey providers.
	zeroCounter bool
	// extraFlags are set in every authData, e.g. flagBE|flagBS for a synced passkey.
	extraFlags byte
	// residentKey is what the client reports in the credProps extension output.
	residentKey bool
}

func newAuthenticator(t testing.TB) *authenticator {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id := make([]byte, 32)
	aaguid := make([]byte, 16)
	_, _ = rand.Read(id)
	_, _ = rand.Read(aaguid)
	return &authenticator{key: key, id: id, aaguid: aaguid, residentKey: true}
}

// answer is how the client and authenticator answer one ceremony; the zero value is honest.
type answer struct {
	origin       string            // clientDataJSON origin; testOrigin when empty
	rpID         string            // hashed into authData; the options' RP ID when empty
	typ          string            // clientDataJSON type; webauthn.create or webauthn.get when empty
	challenge    string            // clientDataJSON challenge; the options' when empty
	flags        *byte             // authData flags; UP|UV (|AT) and extraFlags when nil
	count        *uint32           // the sign counter to report; the next one when nil
	signer       *ecdsa.PrivateKey // signs the assertion; the credential's key when nil
	userHandle   []byte            // the assertion's user handle; the one registered when nil
	noUserHandle bool              // omit the user handle (a non-discoverable credential)
}

// options is the part of the Service's options JSON that a browser reads.
type options struct {
	PublicKey struct {
		Challenge string `json:"challenge"`
		RP        struct {
			ID   string `json:"id"`
			Name string `json:"name"`
		} `json:"rp"`
		User struct {
			ID          string `json:"id"`
			Name        string `json:"name"`
			DisplayName string `json:"displayName"`
		} `json:"user"`
		RPID                   string       `json:"rpId"`
		Timeout                int          `json:"timeout"`
		UserVerification       string       `json:"userVerification"`
		AllowCredentials       []descriptor `json:"allowCredentials"`
		ExcludeCredentials     []descriptor `json:"excludeCredentials"`
		Attestation            string       `json:"attestation"`
		AuthenticatorSelection struct {
			ResidentKey        string `json:"residentKey"`
			RequireResidentKey *bool  `json:"requireResidentKey"`
			UserVerification   string `json:"userVerification"`
		} `json:"authenticatorSelection"`
		PubKeyCredParams []struct {
			Type string `json:"type"`
			Alg  int    `json:"alg"`
		} `json:"pubKeyCredParams"`
		Extensions map[string]any `json:"extensions"`
	} `json:"publicKey"`
}

type descriptor struct {
	Type       string   `json:"type"`
	ID         string   `json:"id"`
	Transports []string `json:"transports"`
}

func parseOptions(t testing.TB, data []byte) options {
	t.Helper()
	var o options
	if err := json.Unmarshal(data, &o); err != nil {
		t.Fatalf("options %s: %v", data, err)
	}
	if o.PublicKey.Challenge == "" {
		t.Fatalf("options without a challenge: %s", data)
	}
	return o
}

func (a *authenticator) clientData(t testing.TB, typ, challenge string, ans answer) []byte {
	t.Helper()
	if ans.typ != "" {
		typ = ans.typ
	}
	if ans.challenge != "" {
		challenge = ans.challenge
	}
	origin := ans.origin
	if origin == "" {
		origin = testOrigin
	}
	data, err := json.Marshal(map[string]any{"type": typ, "challenge": challenge, "origin": origin, "crossOrigin": false})
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// authData is rpIdHash ‖ flags ‖ signCount, then the attested credential data if given.
func authData(rpID string, flags byte, count uint32, attested []byte) []byte {
	h := sha256.Sum256([]byte(rpID))
	out := slices.Concat(h[:], []byte{flags}, binary.BigEndian.AppendUint32(nil, count))
	return append(out, attested...)
}

// coseKey is the credential's public key as a COSE_Key: EC2, ES256, P-256.
func (a *authenticator) coseKey(t testing.TB) []byte {
	t.Helper()
	point, err := a.key.PublicKey.Bytes() // 0x04 ‖ x ‖ y
	if err != nil {
		t.Fatal(err)
	}
	key, err := cbor.Marshal(map[int]any{1: 2, 3: -7, -1: 1, -2: point[1:33], -3: point[33:65]})
	if err != nil {
		t.Fatal(err)
	}
	return key
}

// create answers registration options like navigator.credentials.create and returns the
// JSON of the PublicKeyCredential.
func (a *authenticator) create(t testing.TB, optionsJSON []byte, ans answer) []byte {
	t.Helper()
	o := parseOptions(t, optionsJSON)
	handle, err := b64.DecodeString(o.PublicKey.User.ID)
	if err != nil {
		t.Fatalf("user.id %q: %v", o.PublicKey.User.ID, err)
	}
	a.handle = handle
	rpID := o.PublicKey.RP.ID
	if ans.rpID != "" {
		rpID = ans.rpID
	}
	flags := flagUP | flagUV | flagAT | a.extraFlags
	if ans.flags != nil {
		flags = *ans.flags
	}
	count := a.count
	if ans.count != nil {
		count = *ans.count
	}
	attested := slices.Concat(a.aaguid, binary.BigEndian.AppendUint16(nil, uint16(len(a.id))), a.id, a.coseKey(t))
	attestation, err := cbor.Marshal(map[string]any{
		"fmt":      "none",
		"attStmt":  map[string]any{},
		"authData": authData(rpID, flags, count, attested),
	})
	if err != nil {
		t.Fatal(err)
	}
	clientData := a.clientData(t, "webauthn.create", o.PublicKey.Challenge, ans)
	return mustJSON(t, map[string]any{
		"id":    b64.EncodeToString(a.id),
		"rawId": b64.EncodeToString(a.id),
		"type":  "public-key",
		"response": map[string]any{
			"clientDataJSON":    b64.EncodeToString(clientData),
			"attestationObject": b64.EncodeToString(attestation),
			"transports":        []string{"internal", "hybrid", "internal", "carrier-pigeon"},
		},
		"clientExtensionResults":  map[string]any{"credProps": map[string]any{"rk": a.residentKey}},
		"authenticatorAttachment": "platform",
	})
}

// get answers login options like navigator.credentials.get and returns the JSON of the
// PublicKeyCredential. It does not check allowCredentials: a browser would, an attacker not.
func (a *authenticator) get(t testing.TB, optionsJSON []byte, ans answer) []byte {
	t.Helper()
	o := parseOptions(t, optionsJSON)
	rpID := o.PublicKey.RPID
	if ans.rpID != "" {
		rpID = ans.rpID
	}
	flags := flagUP | flagUV | a.extraFlags
	if ans.flags != nil {
		flags = *ans.flags
	}
	if !a.zeroCounter {
		a.count++
	}
	count := a.count
	if ans.count != nil {
		count = *ans.count
	}
	data := authData(rpID, flags, count, nil)
	clientData := a.clientData(t, "webauthn.get", o.PublicKey.Challenge, ans)
	clientHash := sha256.Sum256(clientData)
	digest := sha256.Sum256(slices.Concat(data, clientHash[:]))
	signer := a.key
	if ans.signer != nil {
		signer = ans.signer
	}
	sig, err := ecdsa.SignASN1(rand.Reader, signer, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	response := map[string]any{
		"clientDataJSON":    b64.EncodeToString(clientData),
		"authenticatorData": b64.EncodeToString(data),
		"signature":         b64.EncodeToString(sig),
	}
	handle := a.handle
	if ans.userHandle != nil {
		handle = ans.userHandle
	}
	if !ans.noUserHandle {
		response["userHandle"] = b64.EncodeToString(handle)
	}
	return mustJSON(t, map[string]any{
		"id":                     b64.EncodeToString(a.id),
		"rawId":                  b64.EncodeToString(a.id),
		"type":                   "public-key",
		"response":               response,
		"clientExtensionResults": map[string]any{},
	})
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestAuthenticatorSignatureVerifies checks the software authenticator itself: its
// assertion signature verifies with its public key over authData ‖ SHA-256(clientDataJSON).
func TestAuthenticatorSignatureVerifies(t *testing.T) {
	a := newAuthenticator(t)
	opts := mustJSON(t, map[string]any{"publicKey": map[string]any{"challenge": "Y2hhbGxlbmdl", "rpId": testRPID}})
	var resp struct {
		Response struct {
			ClientDataJSON    string `json:"clientDataJSON"`
			AuthenticatorData string `json:"authenticatorData"`
			Signature         string `json:"signature"`
		} `json:"response"`
	}
	if err := json.Unmarshal(a.get(t, opts, answer{}), &resp); err != nil {
		t.Fatal(err)
	}
	cd, _ := b64.DecodeString(resp.Response.ClientDataJSON)
	ad, _ := b64.DecodeString(resp.Response.AuthenticatorData)
	sig, _ := b64.DecodeString(resp.Response.Signature)
	h := sha256.Sum256(cd)
	digest := sha256.Sum256(slices.Concat(ad, h[:]))
	if !ecdsa.VerifyASN1(&a.key.PublicKey, digest[:], sig) {
		t.Fatal("the software authenticator's signature does not verify")
	}
	rpHash := sha256.Sum256([]byte(testRPID))
	if len(ad) != 37 || string(ad[:32]) != string(rpHash[:]) || ad[32] != flagUP|flagUV || binary.BigEndian.Uint32(ad[33:]) != 1 {
		t.Fatalf("authData = %x", ad)
	}
}
