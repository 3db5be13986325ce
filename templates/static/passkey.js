// fedhub passkeys. A button with data-passkey="get" or "create" and
// data-options (the server's WebAuthn options, JSON) runs that ceremony when
// clicked and submits its form with the credential's JSON in the hidden
// input named "passkey". Binary values travel as unpadded base64url.
(function () {
  "use strict";
  function bytes(s) {
    var bin = atob(s.replace(/-/g, "+").replace(/_/g, "/"));
    return Uint8Array.from(bin, function (c) { return c.charCodeAt(0); }).buffer;
  }
  function text(buf) {
    var bin = String.fromCharCode.apply(null, new Uint8Array(buf));
    return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }
  function decode(options) {
    var pk = Object.assign({}, options.publicKey, { challenge: bytes(options.publicKey.challenge) });
    if (pk.user) pk.user = Object.assign({}, pk.user, { id: bytes(pk.user.id) });
    ["excludeCredentials", "allowCredentials"].forEach(function (k) {
      if (pk[k]) pk[k] = pk[k].map(function (c) { return Object.assign({}, c, { id: bytes(c.id) }); });
    });
    return { publicKey: pk };
  }
  function encode(cred) {
    if (typeof cred.toJSON === "function") return cred.toJSON();
    var r = cred.response, out = { clientDataJSON: text(r.clientDataJSON) };
    if (r.attestationObject) {
      out.attestationObject = text(r.attestationObject);
      out.transports = r.getTransports ? r.getTransports() : [];
    } else {
      out.authenticatorData = text(r.authenticatorData);
      out.signature = text(r.signature);
      if (r.userHandle) out.userHandle = text(r.userHandle);
    }
    return { id: cred.id, rawId: text(cred.rawId), type: cred.type, response: out,
      authenticatorAttachment: cred.authenticatorAttachment || undefined,
      clientExtensionResults: cred.getClientExtensionResults() };
  }
  document.querySelectorAll("[data-passkey]").forEach(function (button) {
    if (!window.PublicKeyCredential) { button.hidden = true; return; }
    button.addEventListener("click", function (event) {
      event.preventDefault();
      var form = button.form, problem = form.querySelector("[data-passkey-problem]");
      navigator.credentials[button.dataset.passkey](decode(JSON.parse(button.dataset.options)))
        .then(function (cred) {
          form.elements.passkey.value = JSON.stringify(encode(cred));
          form.submit();
        })
        .catch(function () { if (problem) problem.hidden = false; });
    });
  });
})();
