package saml

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"html"
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/fedhub/fedhub/login"

	"github.com/crewjam/saml"

	"github.com/fedhub/fedhub/brokers"
)

// Name ID formats.
const (
	NameIDPersistent = string(saml.PersistentNameIDFormat)
	NameIDTransient  = string(saml.TransientNameIDFormat)
	nameIDEmail      = string(saml.EmailAddressNameIDFormat)
)

const (
	// rsaSHA256 is the request signature method (goxmldsig's RSASHA256SignatureMethod).
	rsaSHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
	bearer    = "urn:oasis:names:tc:SAML:2.0:cm:bearer"

	defaultRefresh = time.Hour
	// fetchTimeout bounds one IdP metadata download.
	fetchTimeout = 15 * time.Second
	// maxMetadata caps an IdP metadata document (federation aggregates are
	// not supported: give the URL of one IdP).
	maxMetadata = 5 << 20
	// maxResponse caps a posted SAMLResponse form when brokers has not read
	// the form yet.
	maxResponse = 512 << 10
	// certWarning is how long before expiry Health starts complaining.
	certWarning = 14 * 24 * time.Hour
)

// Keys of brokers.Flow.Data that Begin fills and Finish reads.
const (
	DataRequestID  = "request_id"  // the AuthnRequest ID
	DataStarted    = "started"     // when Begin ran, Unix seconds (Config.Now)
	DataForceAuthn = "force_authn" // "1" when the AuthnRequest had ForceAuthn="true"
)

// AuthnInstantSkew is how far the IdP's clock may lag behind fedhub's: on a
// forced login, the AuthnInstant may be up to this much before the flow
// began. A larger value would let a login the IdP's SSO session answered a
// moment before the flow began count as fresh.
const AuthnInstantSkew = 5 * time.Second

// Errors Finish, FinishUnsolicited and Begin return. None carries upstream
// data; the details are logged.
var (
	// ErrInvalidResponse: the IdP's response failed verification.
	ErrInvalidResponse = errors.New("saml: the identity provider's response was refused")
	// ErrIDPUnavailable: the IdP metadata cannot be loaded (or lacks what a
	// login needs).
	ErrIDPUnavailable = &login.UserError{Message: "The sign-in service cannot be reached right now. Try again in a few minutes, or choose another way to sign in."}
	// ErrReplayed: this assertion was already used.
	ErrReplayed = &login.UserError{Message: "This answer of the sign-in service was already used. Go back to the application and sign in again."}
	// ErrUnsolicited: an IdP-initiated login while AllowIDPInitiated is off.
	ErrUnsolicited = &login.UserError{Message: "Sign-in through this service must start here. Go to the application and sign in from there."}
	// ErrUnknownLogin: a response to a request fedhub no longer knows
	// (expired, used, or from another browser).
	ErrUnknownLogin = &login.UserError{Message: "This sign-in has expired or was started in another browser. Go back to the application and sign in again."}
	// ErrNoStableSubject: no persistent NameID and no subject attribute.
	ErrNoStableSubject = &login.UserError{Message: "The sign-in service did not send a permanent identifier for your account, so you cannot be recognised. Ask your administrator to have it send a persistent NameID."}
	// ErrIDPDenied: the IdP answered with a non-success status.
	ErrIDPDenied = &login.UserError{Message: "The sign-in service did not sign you in. Try again, or choose another way to sign in."}
	// ErrNotReauthenticated: the AuthnRequest had ForceAuthn and the
	// assertion's AuthnInstant is before the flow began (or missing): the IdP
	// answered from its SSO session.
	ErrNotReauthenticated = &login.UserError{Message: "The sign-in service did not ask for your credentials again, which this sign-in requires. Try again; if it keeps happening, sign out of the sign-in service first."}
)

// Connector is a SAML service provider towards one IdP.
type Connector struct {
	cfg         Config
	store       brokers.ConnectorStore
	log         *slog.Logger
	client      *http.Client
	entityID    string
	acsURL      url.URL
	metadataURL url.URL
	scriptURL   string
	nameID      string
	binding     string
	refresh     time.Duration
	attrs       map[string][]string // role → candidate attribute names
	mfaClasses  []string
	now         func() time.Time
	key         *rsa.PrivateKey
	cert        *x509.Certificate

	fetchMu sync.Mutex // one IdP metadata load at a time

	mu        sync.Mutex // guards what follows
	idp       *idpMetadata
	lastTry   time.Time
	lastErr   error
	lastErrAt time.Time
}

var defaultAttributes = map[string][]string{
	"username": {"uid", "urn:oid:0.9.2342.19200300.100.1.1"},
	"email": {"mail", "email", "urn:oid:0.9.2342.19200300.100.1.3",
		"http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress"},
	"name": {"displayName", "urn:oid:2.16.840.1.113730.3.1.241", "cn", "urn:oid:2.5.4.3"},
	"groups": {"groups", "memberOf", "urn:oid:1.2.840.113556.1.2.102",
		"http://schemas.microsoft.com/ws/2008/06/identity/claims/groups"},
	"subject":        nil,
	"email_verified": nil,
}

// New returns a SAML connector. It does not contact the IdP: metadata from a
// URL is loaded on first use. Metadata from a file is read now.
func New(ctx context.Context, cfg Config, store brokers.ConnectorStore, log *slog.Logger) (*Connector, error) {
	if log == nil {
		log = slog.Default()
	}
	if cfg.ID == "" {
		return nil, errors.New("saml: connector ID is empty")
	}
	if store == nil {
		return nil, errors.New("saml: no connector store")
	}
	base, err := url.Parse(strings.TrimSuffix(cfg.BaseURL, "/"))
	if err != nil || (base.Scheme != "https" && base.Scheme != "http") || base.Host == "" {
		return nil, fmt.Errorf("saml %s: base URL %q is not an absolute http(s) URL", cfg.ID, cfg.BaseURL)
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("saml %s: %w", cfg.ID, err)
	}
	c := &Connector{cfg: cfg, store: store, log: log, refresh: cfg.MetadataRefresh,
		client: &http.Client{Timeout: fetchTimeout, Transport: cfg.Transport}}
	if c.refresh == 0 {
		c.refresh = defaultRefresh
	}
	prefix := base.String() + "/broker/" + url.PathEscape(cfg.ID)
	mu, err := url.Parse(prefix + "/saml/metadata")
	if err != nil {
		return nil, fmt.Errorf("saml %s: metadata URL: %w", cfg.ID, err)
	}
	acs, err := url.Parse(prefix + "/callback")
	if err != nil {
		return nil, fmt.Errorf("saml %s: ACS URL: %w", cfg.ID, err)
	}
	c.metadataURL, c.acsURL, c.scriptURL = *mu, *acs, prefix+"/saml/post.js"
	c.entityID = cfg.EntityID
	if c.entityID == "" {
		c.entityID = mu.String()
	}

	c.binding = saml.HTTPRedirectBinding
	if cfg.Binding == "post" {
		c.binding = saml.HTTPPostBinding
	}

	c.attrs = map[string][]string{}
	for role, names := range defaultAttributes {
		c.attrs[role] = names
	}
	for role, name := range cfg.Attributes {
		if name = strings.TrimSpace(name); name != "" {
			c.attrs[role] = []string{name}
		}
	}

	c.mfaClasses = cfg.MFAContextClasses
	c.now = cfg.Now
	if c.now == nil {
		c.now = func() time.Time { return saml.TimeNow() }
	}
	c.cfg.MaxAgeWithoutUpstream = cmp.Or(cfg.MaxAgeWithoutUpstream, 24*time.Hour)

	c.nameID = cfg.NameIDFormat
	if c.nameID == "" {
		c.nameID = NameIDPersistent
	}

	if err := c.loadKey(ctx); err != nil {
		return nil, err
	}
	if cfg.IDPMetadataFile != "" {
		c.fetchMu.Lock()
		_, err := c.reload(ctx)
		c.fetchMu.Unlock()
		if err != nil {
			return nil, fmt.Errorf("saml %s: idp_metadata_file: %w", cfg.ID, err)
		}
	}
	return c, nil
}

// EntityID is fedhub's SAML entity ID for this connector.
func (c *Connector) EntityID() string { return c.entityID }

// ACSURL is where the IdP posts its responses (the flow's Callback).
func (c *Connector) ACSURL() string { return c.acsURL.String() }

// serviceProvider is crewjam's SP for one operation; md may be nil (SP
// metadata needs no IdP).
func (c *Connector) serviceProvider(md *idpMetadata) *saml.ServiceProvider {
	sp := &saml.ServiceProvider{
		EntityID:          c.entityID,
		Key:               c.key,
		Certificate:       c.cert,
		MetadataURL:       c.metadataURL,
		AcsURL:            c.acsURL,
		AuthnNameIDFormat: saml.NameIDFormat(c.nameID),
		// Artifact resolution is not offered; make sure it can never run.
		HTTPClient: &http.Client{Transport: refuseTransport{}},
	}
	if md != nil {
		sp.IDPMetadata = md.ed
	}
	if c.cfg.SignRequests {
		sp.SignatureMethod = rsaSHA256
	}
	return sp
}

type refuseTransport struct{}

func (refuseTransport) RoundTrip(*http.Request) (*http.Response, error) {
	return nil, errors.New("saml: outgoing requests are disabled")
}

// Begin sends the browser to the IdP with an AuthnRequest, with
// ForceAuthn="true" when flow.ForceAuthn (flow.MaxAge has no SAML
// equivalent). It records the request ID, when the flow began and whether
// authentication was forced in flow.Data (DataRequestID, DataStarted,
// DataForceAuthn).
func (c *Connector) Begin(ctx context.Context, w http.ResponseWriter, r *http.Request, flow *brokers.Flow) error {
	if flow == nil || flow.State == "" {
		return errors.New("saml: Begin needs a flow with a state")
	}
	md, err := c.current(ctx)
	if err != nil {
		return ErrIDPUnavailable
	}
	sp := c.serviceProvider(md)
	if flow.ForceAuthn {
		yes := true
		sp.ForceAuthn = &yes // before MakeAuthenticationRequest: the POST binding signs the XML there
	}
	loc := sp.GetSSOBindingLocation(c.binding)
	if loc == "" {
		c.log.ErrorContext(ctx, "SAML IdP metadata has no SingleSignOnService for the configured binding",
			"connector", c.cfg.ID, "binding", c.binding, "idp", md.ed.EntityID)
		return ErrIDPUnavailable
	}
	req, err := sp.MakeAuthenticationRequest(loc, c.binding, saml.HTTPPostBinding)
	if err != nil {
		return fmt.Errorf("saml: make AuthnRequest: %w", err)
	}
	if flow.Data == nil {
		flow.Data = map[string]string{}
	}
	flow.Data[DataRequestID] = req.ID
	flow.Data[DataStarted] = strconv.FormatInt(c.now().Unix(), 10)
	delete(flow.Data, DataForceAuthn)
	if flow.ForceAuthn {
		flow.Data[DataForceAuthn] = "1"
	}
	w.Header().Set("Cache-Control", "no-store")

	if c.binding == saml.HTTPRedirectBinding {
		u, err := req.Redirect(url.QueryEscape(flow.State), sp)
		if err != nil {
			return fmt.Errorf("saml: AuthnRequest redirect: %w", err)
		}
		w.Header().Set("Location", u.String())
		w.WriteHeader(http.StatusFound)
		return nil
	}

	samlRequest, err := postedRequest(req)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	if err := postForm.Execute(&buf, map[string]string{"URL": loc, "SAMLRequest": samlRequest,
		"RelayState": flow.State, "Script": c.scriptURL}); err != nil {
		return fmt.Errorf("saml: AuthnRequest form: %w", err)
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	_, err = w.Write(buf.Bytes())
	return err
}

// postedRequest is the base64 AuthnRequest for the POST binding. crewjam only
// serialises a (signed) AuthnRequest through its own HTML form, whose inline
// script fedhub's CSP blocks: take the value from that form.
func postedRequest(req *saml.AuthnRequest) (string, error) {
	page := string(req.Post(""))
	const marker = `name="SAMLRequest" value="`
	i := strings.Index(page, marker)
	if i < 0 {
		return "", errors.New("saml: AuthnRequest form has no SAMLRequest")
	}
	rest := page[i+len(marker):]
	j := strings.IndexByte(rest, '"')
	if j < 0 {
		return "", errors.New("saml: AuthnRequest form is cut")
	}
	v := html.UnescapeString(rest[:j])
	if _, err := base64.StdEncoding.DecodeString(v); err != nil {
		return "", fmt.Errorf("saml: AuthnRequest form value: %w", err)
	}
	return v, nil
}

// postForm submits the AuthnRequest; fedhub's CSP allows scripts from 'self'
// only, so the submitting script is served by Routes.
var postForm = template.Must(template.New("saml-post").Parse(`<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Continue to sign in</title></head>
<body>
<form method="post" action="{{.URL}}" id="saml-post">
<input type="hidden" name="SAMLRequest" value="{{.SAMLRequest}}">
<input type="hidden" name="RelayState" value="{{.RelayState}}">
<p>You are being sent to the sign-in service.</p>
<button type="submit">Continue</button>
</form>
<script src="{{.Script}}"></script>
</body></html>
`))

const postScript = `document.getElementById("saml-post").submit();` + "\n"

// Routes serves the SP metadata and the POST binding's submit script under
// /broker/{id}.
func (c *Connector) Routes(add func(method, path string, h http.HandlerFunc)) {
	add(http.MethodGet, "/saml/metadata", c.serveMetadata)
	add(http.MethodGet, "/saml/post.js", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
		w.Header().Set("Cache-Control", "public, max-age=86400")
		_, _ = w.Write([]byte(postScript))
	})
}

// Metadata is the SP metadata document.
func (c *Connector) Metadata() ([]byte, error) {
	md := c.serviceProvider(nil).Metadata()
	if len(md.SPSSODescriptors) != 1 {
		return nil, errors.New("saml: unexpected SP metadata shape")
	}
	spd := &md.SPSSODescriptors[0]
	// Only HTTP-POST: fedhub does not resolve artifacts.
	yes := true
	spd.AssertionConsumerServices = []saml.IndexedEndpoint{{
		Binding: saml.HTTPPostBinding, Location: c.acsURL.String(), Index: 1, IsDefault: &yes}}
	hasSigning := false
	for _, kd := range spd.KeyDescriptors {
		hasSigning = hasSigning || kd.Use == "signing"
	}
	if !hasSigning {
		spd.KeyDescriptors = append(spd.KeyDescriptors, saml.KeyDescriptor{Use: "signing",
			KeyInfo: saml.KeyInfo{X509Data: saml.X509Data{X509Certificates: []saml.X509Certificate{
				{Data: base64.StdEncoding.EncodeToString(c.cert.Raw)}}}}})
	}
	out, err := xml.MarshalIndent(md, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("saml: SP metadata: %w", err)
	}
	return append([]byte(xml.Header), out...), nil
}

func (c *Connector) serveMetadata(w http.ResponseWriter, _ *http.Request) {
	body, err := c.Metadata()
	if err != nil {
		c.log.Error("SAML SP metadata", "connector", c.cfg.ID, "err", err)
		http.Error(w, "metadata unavailable", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/samlmetadata+xml")
	w.Header().Set("Cache-Control", "public, max-age=3600")
	_, _ = w.Write(body)
}

// Finish verifies the IdP's response to flow. The identity's AuthTime and
// ACR come from the verified assertion's AuthnStatement (AuthnInstant,
// AuthnContextClassRef; the latest statement when there are several). When
// Begin forced authentication, an assertion without an AuthnInstant at or
// after the flow's start minus AuthnInstantSkew is refused with
// ErrNotReauthenticated.
func (c *Connector) Finish(ctx context.Context, r *http.Request, flow *brokers.Flow) (login.Identity, error) {
	if flow == nil {
		return login.Identity{}, c.refuse("no flow", nil)
	}
	requestID := flow.Data[DataRequestID]
	if requestID == "" {
		return login.Identity{}, c.refuse("the flow has no AuthnRequest ID", nil)
	}
	var freshSince time.Time // zero: any AuthnInstant
	if flow.ForceAuthn || flow.Data[DataForceAuthn] == "1" {
		secs, err := strconv.ParseInt(flow.Data[DataStarted], 10, 64)
		if err != nil {
			return login.Identity{}, c.refuse("the flow forced authentication but has no start time", err)
		}
		freshSince = time.Unix(secs, 0).Add(-AuthnInstantSkew)
	}
	raw, relayState, err := c.readResponse(r)
	if err != nil {
		return login.Identity{}, c.refuse("the response cannot be read", err)
	}
	if relayState != flow.State {
		return login.Identity{}, c.refuse("RelayState does not match the flow", nil)
	}
	return c.verify(ctx, raw, requestID, freshSince)
}

// FinishUnsolicited verifies an IdP-initiated response; it refuses unless
// AllowIDPInitiated is set. RelayState is ignored.
func (c *Connector) FinishUnsolicited(ctx context.Context, r *http.Request) (login.Identity, error) {
	raw, _, err := c.readResponse(r)
	if err != nil {
		return login.Identity{}, c.refuse("the response cannot be read", err)
	}
	if !c.cfg.AllowIDPInitiated {
		if sh, err := inspect(raw); err == nil && sh.inResponseTo != "" {
			// A late or misrouted answer to a real request, not an IdP-initiated login.
			c.log.WarnContext(ctx, "SAML response refused", "connector", c.cfg.ID,
				"reason", "answer to an AuthnRequest with no login in progress (expired, used or another browser)")
			return login.Identity{}, ErrUnknownLogin
		}
		c.log.WarnContext(ctx, "SAML response refused", "connector", c.cfg.ID,
			"reason", "IdP-initiated login is not allowed for this connector (allow_idp_initiated)")
		return login.Identity{}, ErrUnsolicited
	}
	return c.verify(ctx, raw, "", time.Time{})
}

// MultiFactor reports whether the IdP says the login used several factors:
// its AuthnContextClassRef is one of the configured MFAContextClasses.
func (c *Connector) MultiFactor(id login.Identity) bool {
	return id.ACR != "" && slices.Contains(c.mfaClasses, id.ACR)
}

// readResponse reads the POSTed SAMLResponse.
func (c *Connector) readResponse(r *http.Request) ([]byte, string, error) {
	if r == nil || r.Method != http.MethodPost {
		return nil, "", errors.New("not a POST")
	}
	if r.PostForm == nil {
		if r.Body != nil {
			r.Body = http.MaxBytesReader(nil, r.Body, maxResponse)
		}
		// crewjam reads req.Form without parsing it.
		if err := r.ParseForm(); err != nil {
			return nil, "", err
		}
	}
	v := r.PostForm.Get("SAMLResponse")
	if v == "" {
		if r.Form.Get("SAMLart") != "" {
			return nil, "", errors.New("artifact binding is not supported")
		}
		return nil, "", errors.New("no SAMLResponse in the POST body")
	}
	raw, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(v), ""))
	if err != nil {
		return nil, "", errors.New("SAMLResponse is not base64")
	}
	return raw, r.PostForm.Get("RelayState"), nil
}

// refuse logs why a response was refused and returns the generic error.
func (c *Connector) refuse(reason string, err error) error {
	args := []any{"connector", c.cfg.ID, "reason", reason}
	if err != nil {
		args = append(args, "err", err.Error())
	}
	c.log.Warn("SAML response refused", args...)
	return ErrInvalidResponse
}
