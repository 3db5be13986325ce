package kerberos

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/jcmturner/gokrb5/v8/gssapi"
	"github.com/jcmturner/gokrb5/v8/iana/flags"
	"github.com/jcmturner/gokrb5/v8/iana/nametype"
	"github.com/jcmturner/gokrb5/v8/keytab"
	"github.com/jcmturner/gokrb5/v8/messages"
	"github.com/jcmturner/gokrb5/v8/spnego"
	"github.com/jcmturner/gokrb5/v8/types"

	"github.com/fedhub/fedhub/brokers"
	"github.com/fedhub/fedhub/login"
)

// Resolver finds the directory account of a Kerberos principal: the Active
// Directory connector named by resolve_with (brokers/ldap).
type Resolver interface {
	// ResolvePrincipal returns the identity a password login of the account
	// would give (same subject), for a principal such as alice@EXAMPLE.TEST.
	// An account that is not there is login.ErrInvalidCredentials; one that
	// may not sign in (disabled, locked, expired) login.ErrAccountDisabled or
	// a *login.UserError.
	ResolvePrincipal(ctx context.Context, principal string) (login.Identity, error)
}

// Options are what a connector needs besides its Config.
type Options struct {
	// Replays records the authenticators seen (the connector's database
	// space, shared by every node).
	Replays brokers.ConnectorStore
	// Resolver is the connector named by Config.ResolveWith; nil without it.
	Resolver Resolver
	Now      func() time.Time // default time.Now
	Log      *slog.Logger     // may be nil
}

// Connector verifies SPNEGO tokens with one service principal's keytab.
type Connector struct {
	cfg      Config
	keytab   *keytab.Keytab
	spn      types.PrincipalName
	networks []netip.Prefix
	replays  brokers.ConnectorStore
	resolver Resolver
	now      func() time.Time
	log      *slog.Logger
}

var _ brokers.NegotiateConnector = (*Connector)(nil)

// New checks cfg, reads the keytab and returns the connector.
func New(cfg Config, o Options) (*Connector, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("kerberos: %w", err)
	}
	if (cfg.ResolveWith != "") != (o.Resolver != nil) {
		return nil, errors.New("kerberos: resolve_with and its connector go together")
	}
	kt, err := keytab.Load(cfg.KeytabFile)
	if err != nil {
		return nil, fmt.Errorf("kerberos: keytab_file: %w", err)
	}
	spn := types.NewPrincipalName(nametype.KRB_NT_SRV_INST, cfg.ServicePrincipal)
	found := false
	for _, e := range kt.Entries {
		found = found || (e.Principal.Realm == cfg.Realm && slices.Equal(e.Principal.Components, spn.NameString))
	}
	if !found {
		return nil, fmt.Errorf("kerberos: keytab_file has no key of %s@%s", cfg.ServicePrincipal, cfg.Realm)
	}
	networks, _ := cfg.networks() // checked by Validate
	c := &Connector{cfg: cfg, keytab: kt, spn: spn, networks: networks, replays: o.Replays, resolver: o.Resolver,
		now: o.Now, log: o.Log}
	if c.now == nil {
		c.now = time.Now
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	return c, nil
}

// Automatic implements brokers.NegotiateConnector: the login page asks the
// browsers of auto_for for a ticket without a click.
func (c *Connector) Automatic(ip string) bool {
	addr, err := netip.ParseAddr(ip)
	if err != nil {
		return false
	}
	addr = addr.Unmap()
	for _, p := range c.networks {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// Why a token is refused (wrapped with details).
var (
	errMalformed    = errors.New("kerberos: the token is not a Kerberos AP-REQ")
	errOtherService = errors.New("kerberos: the ticket is for another service")
	errOtherRealm   = errors.New("kerberos: the ticket is of another realm")
	errKey          = errors.New("kerberos: the ticket does not decrypt with the keytab")
	errNotYetValid  = errors.New("kerberos: the ticket is not valid yet")
	errExpired      = errors.New("kerberos: the ticket has expired")
	errAuthn        = errors.New("kerberos: the authenticator does not match the ticket")
	errSkew         = errors.New("kerberos: the authenticator's time is too far from fedhub's clock")
	errReplay       = errors.New("kerberos: the authenticator was already used (a replay)")
)

// Negotiate implements brokers.NegotiateConnector.
func (c *Connector) Negotiate(ctx context.Context, token []byte) (login.Identity, error) {
	req, err := apReq(token)
	if err != nil {
		return login.Identity{}, err
	}
	principal, authTime, err := c.verify(ctx, req)
	if err != nil {
		c.log.Info("kerberos: ticket refused", "error", err)
		return login.Identity{}, err
	}
	if c.resolver != nil {
		id, err := c.resolver.ResolvePrincipal(ctx, principal)
		if err != nil {
			c.log.Info("kerberos: principal refused by the directory", "principal", principal, "error", err)
			return login.Identity{}, err
		}
		id.Connector, id.AuthTime = c.cfg.ResolveWith, authTime
		return id, nil
	}
	user, _, _ := strings.Cut(principal, "@")
	return login.Identity{Subject: principal, Username: user, AuthTime: authTime,
		Raw: map[string]any{"principal": principal}}, nil
}

// apReq reads the Kerberos AP-REQ of a Negotiate token: SPNEGO's NegTokenInit
// whose first mechanism is Kerberos, or a bare Kerberos GSS token. Anything
// else (NTLM) is brokers.ErrNoNegotiation.
func apReq(token []byte) (*messages.APReq, error) {
	mech := token
	var st spnego.SPNEGOToken
	if err := st.Unmarshal(token); err == nil {
		if !st.Init || len(st.NegTokenInit.MechTypes) == 0 {
			return nil, brokers.ErrNoNegotiation
		}
		oid := st.NegTokenInit.MechTypes[0]
		if !oid.Equal(gssapi.OIDKRB5.OID()) && !oid.Equal(gssapi.OIDMSLegacyKRB5.OID()) {
			return nil, brokers.ErrNoNegotiation
		}
		mech = st.NegTokenInit.MechTokenBytes
	} else if len(token) == 0 || token[0] != 0x60 { // not a GSS token at all: NTLM's "NTLMSSP"
		return nil, brokers.ErrNoNegotiation
	}
	var kt spnego.KRB5Token
	if err := kt.Unmarshal(mech); err != nil {
		return nil, fmt.Errorf("%w: %v", errMalformed, err)
	}
	if !kt.IsAPReq() {
		return nil, errMalformed
	}
	return &kt.APReq, nil
}

// verify checks an AP-REQ (RFC 4120 §3.2.3) with the connector's clock and
// returns the client's principal and when it authenticated to the KDC.
func (c *Connector) verify(ctx context.Context, req *messages.APReq) (string, time.Time, error) {
	tkt := &req.Ticket
	if !tkt.SName.Equal(c.spn) {
		return "", time.Time{}, fmt.Errorf("%w: %s", errOtherService, tkt.SName.PrincipalNameString())
	}
	if tkt.Realm != c.cfg.Realm {
		return "", time.Time{}, fmt.Errorf("%w: %s", errOtherRealm, tkt.Realm)
	}
	if err := tkt.DecryptEncPart(c.keytab, &c.spn); err != nil {
		return "", time.Time{}, fmt.Errorf("%w: %v", errKey, err)
	}
	enc := tkt.DecryptedEncPart
	if enc.CRealm != c.cfg.Realm {
		return "", time.Time{}, fmt.Errorf("%w: the client is of %s", errOtherRealm, enc.CRealm)
	}
	now, skew := c.now().UTC(), c.cfg.skew()
	start := enc.StartTime
	if start.IsZero() {
		start = enc.AuthTime
	}
	switch {
	case start.Sub(now) > skew || types.IsFlagSet(&enc.Flags, flags.Invalid):
		return "", time.Time{}, fmt.Errorf("%w: it starts at %s", errNotYetValid, start)
	case now.Sub(enc.EndTime) > skew:
		return "", time.Time{}, fmt.Errorf("%w at %s", errExpired, enc.EndTime)
	}
	if err := req.DecryptAuthenticator(enc.Key); err != nil {
		return "", time.Time{}, fmt.Errorf("%w: %v", errAuthn, err)
	}
	a := req.Authenticator
	if !a.CName.Equal(enc.CName) || a.CRealm != enc.CRealm {
		return "", time.Time{}, errAuthn
	}
	ctime := a.CTime.Add(time.Duration(a.Cusec) * time.Microsecond)
	if now.Sub(ctime) > skew || ctime.Sub(now) > skew {
		return "", time.Time{}, fmt.Errorf("%w: %s", errSkew, ctime)
	}
	principal := enc.CName.PrincipalNameString() + "@" + enc.CRealm
	// An authenticator is accepted once; past the skew it fails the check above.
	first, err := c.replays.Once(ctx, fmt.Sprintf("ap:%s:%d", principal, ctime.UnixMicro()), ctime.Add(skew))
	if err != nil {
		return "", time.Time{}, fmt.Errorf("kerberos: %w", err)
	}
	if !first {
		return "", time.Time{}, fmt.Errorf("%w: %s at %s", errReplay, principal, ctime)
	}
	return principal, enc.AuthTime, nil
}
