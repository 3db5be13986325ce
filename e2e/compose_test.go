package e2e

import (
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// TestComposeFile checks what can be checked without a Docker engine: the
// compose file parses, runs fedhub next to OpenLDAP with the configuration it
// mounts, and that configuration passes `fedhub check-config` with the
// environment the compose file gives it.
func TestComposeFile(t *testing.T) {
	needsBinary(t)
	raw, err := os.ReadFile("../docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var compose struct {
		Services map[string]struct {
			Image     string `yaml:"image"`
			Build     string `yaml:"build"`
			DependsOn map[string]struct {
				Condition string `yaml:"condition"`
			} `yaml:"depends_on"`
			Environment map[string]string `yaml:"environment"`
			Volumes     []string          `yaml:"volumes"`
			Ports       []string          `yaml:"ports"`
			Healthcheck struct {
				Test     []string `yaml:"test"`
				Interval string   `yaml:"interval"`
				Timeout  string   `yaml:"timeout"`
				Retries  int      `yaml:"retries"`
			} `yaml:"healthcheck"`
		} `yaml:"services"`
		Volumes map[string]any `yaml:"volumes"`
	}
	dec := yaml.NewDecoder(strings.NewReader(string(raw)))
	dec.KnownFields(true)
	if err := dec.Decode(&compose); err != nil {
		t.Fatalf("docker-compose.yml does not parse: %v", err)
	}
	ldap, ok := compose.Services["openldap"]
	if !ok || !strings.Contains(ldap.Image, "openldap") || ldap.Build == "" {
		t.Fatalf("no OpenLDAP service built here: %+v", compose.Services)
	}
	if _, err := os.Stat(filepath.Join("..", ldap.Build, "Dockerfile")); err != nil {
		t.Fatalf("the openldap service builds from a Dockerfile: %v", err)
	}
	fh, ok := compose.Services["fedhub"]
	if !ok || fh.Build != "." || fh.DependsOn["openldap"].Condition != "service_healthy" {
		t.Fatalf("fedhub service must build this repository and wait for a healthy openldap: %+v", fh)
	}
	for name, svc := range compose.Services {
		if len(svc.Healthcheck.Test) == 0 {
			t.Errorf("service %s has no healthcheck", name)
		}
	}
	if _, err := os.Stat("../Dockerfile"); err != nil {
		t.Fatalf("the fedhub service builds from a Dockerfile: %v", err)
	}
	var config string
	for _, v := range fh.Volumes {
		if host, target, ok := strings.Cut(v, ":"); ok && strings.HasPrefix(target, "/etc/fedhub/fedhub.yaml") {
			config = filepath.Join("..", host)
		}
	}
	if config == "" {
		t.Fatalf("the fedhub service mounts no configuration at /etc/fedhub/fedhub.yaml: %v", fh.Volumes)
	}
	body, err := os.ReadFile(config)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(body), "ldap://openldap:1389") {
		t.Fatalf("%s does not use the compose file's OpenLDAP", config)
	}

	// The compose environment, with its ${VAR:-default} defaults resolved.
	defaulted := regexp.MustCompile(`^\$\{[A-Z_]+:-(.*)\}$`)
	env := os.Environ()
	for k, v := range fh.Environment {
		if m := defaulted.FindStringSubmatch(v); m != nil {
			v = m[1]
		}
		env = append(env, k+"="+v)
	}
	cmd := exec.Command(binary, "check-config", "-c", config)
	cmd.Env = env
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("check-config refuses the compose configuration: %v\n%s", err, out)
	}
	cmd = exec.Command(binary, "check-config", "-c", config)
	cmd.Env = os.Environ() // without the compose environment the secrets are missing
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "LDAP_ADMIN_PASSWORD") {
		t.Fatalf("check-config should name the missing LDAP_ADMIN_PASSWORD, got %v\n%s", err, out)
	}
}

// TestComposeServices runs what the compose file runs, without a Docker
// engine: the OpenLDAP image's start script on this machine's slapd, fedhub
// with the compose configuration pointed at it, a login as alice through the
// directory, and both healthcheck commands.
func TestComposeServices(t *testing.T) {
	needsBinary(t)
	if _, err := os.Stat("/usr/sbin/slapd"); err != nil {
		t.Fatal("slapd is not installed: run the tests with scripts/test, which installs it")
	}
	raw, err := os.ReadFile("../docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var compose struct {
		Services map[string]struct {
			Healthcheck struct {
				Test []string `yaml:"test"`
			} `yaml:"healthcheck"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal(raw, &compose); err != nil {
		t.Fatal(err)
	}
	// healthy runs a service's healthcheck here, with its port replaced and
	// fedhub the binary under test.
	healthy := func(service, port, here string) error {
		args := slices.Clone(compose.Services[service].Healthcheck.Test[1:])
		for i := range args {
			args[i] = strings.ReplaceAll(strings.ReplaceAll(args[i], "127.0.0.1:"+port, "127.0.0.1:"+here), "127.0.0.1/"+port, "127.0.0.1/"+here)
		}
		if args[0] == "fedhub" {
			args[0] = binary
		}
		return exec.Command(args[0], args[1:]...).Run()
	}

	_, ldapPort, _ := net.SplitHostPort(freeAddr(t))
	slapd := exec.Command("sh", "../deploy/compose/openldap/start.sh")
	slapd.Env = append(os.Environ(), "LDAP_DIR="+t.TempDir(), "LDAP_SEED=../deploy/compose/openldap", "LDAP_PORT="+ldapPort,
		"LDAP_ADMIN_PASSWORD=admin-password")
	var slapdOut syncBuffer
	slapd.Stdout, slapd.Stderr = &slapdOut, &slapdOut
	if err := slapd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = slapd.Process.Kill(); _ = slapd.Wait() })
	for deadline := time.Now().Add(20 * time.Second); healthy("openldap", "1389", ldapPort) != nil; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the openldap healthcheck never passed:\n%s", slapdOut.String())
		}
	}

	body, err := os.ReadFile("../deploy/compose/fedhub.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg := strings.NewReplacer("issuer: http://localhost:8080", "issuer: %[1]s", "listen: 0.0.0.0:8080", "listen: %[2]s",
		"dsn: /data/fedhub.db", "dsn: %[3]s", "ldap://openldap:1389", "ldap://127.0.0.1:"+ldapPort).Replace(string(body))
	s := Start(t, WithConfig(cfg), WithEnv("LDAP_ADMIN_PASSWORD=admin-password", "DEMO_APP_SECRET=demo-secret", "ADMIN_PASSWORD=admin"))
	b := NewBrowser(t)
	params := AuthParams("client_id", "demo-app", "scope", "openid profile email")
	resp, page := b.ldapLogin(s, params, "corp-ldap", "alice", "alice-password")
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("alice's directory login answered %d:\n%s", resp.StatusCode, page)
	}
	_, idt := ocRedeemAndVerify(t, s, ocClient{id: "demo-app", secret: "demo-secret"}, ocWantCode(t, s, ocCallback(t, resp, redirectURI), params), params)
	if idt.Claims["preferred_username"] != "alice" || !slices.Contains(groupsOf(idt.Claims), "corp-ldap:staff") {
		t.Errorf("alice's claims = %v, want username alice in corp-ldap:staff", idt.Claims)
	}
	_, mgmtPort, _ := net.SplitHostPort(strings.TrimPrefix(s.Mgmt, "http://"))
	if err := healthy("fedhub", "9000", mgmtPort); err != nil {
		t.Errorf("the fedhub healthcheck fails on a ready fedhub: %v", err)
	}
	_, nobody, _ := net.SplitHostPort(freeAddr(t))
	if err := healthy("fedhub", "9000", nobody); err == nil {
		t.Errorf("the fedhub healthcheck passes where no fedhub listens")
	}
}

// TestDockerfile: the runtime image is distroless (glibc for the cgo SQLite
// driver, nothing else) on the Debian release the build stage compiles on, it
// runs as a user that is not root, and the compose healthcheck needs no shell.
func TestDockerfile(t *testing.T) {
	raw, err := os.ReadFile("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	var from, user []string
	for _, line := range strings.Split(string(raw), "\n") {
		fields := strings.Fields(line)
		switch {
		case len(fields) >= 2 && fields[0] == "FROM":
			from = append(from, fields[1])
		case len(fields) >= 2 && fields[0] == "USER" && len(from) > 1:
			user = append(user, fields[1])
		}
	}
	cases := []struct {
		what string
		ok   bool
	}{
		{"two stages", len(from) == 2},
		{"the build stage is Debian 12 (bookworm), whose glibc the runtime has", len(from) == 2 && strings.HasSuffix(from[0], "-bookworm")},
		{"the runtime is distroless base on Debian 12, the nonroot variant", len(from) == 2 && from[1] == "gcr.io/distroless/base-debian12:nonroot"},
		{"the comment says why that image (cgo, glibc)", strings.Contains(string(raw), "cgo") && strings.Contains(string(raw), "glibc")},
		{"the runtime runs as nonroot", slices.Equal(user, []string{"nonroot"})},
		{"a cgo build", strings.Contains(string(raw), "CGO_ENABLED=1")},
	}
	for _, c := range cases {
		if !c.ok {
			t.Errorf("Dockerfile: not %s (FROM %v, USER %v)", c.what, from, user)
		}
	}
	compose, err := os.ReadFile("../docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var services struct {
		Services map[string]struct {
			Build       string `yaml:"build"`
			Healthcheck struct {
				Test []string `yaml:"test"`
			} `yaml:"healthcheck"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal(compose, &services); err != nil {
		t.Fatal(err)
	}
	if test := services.Services["fedhub"].Healthcheck.Test; len(test) < 2 || test[0] != "CMD" || test[1] != "fedhub" {
		t.Errorf("the fedhub healthcheck %q must run fedhub itself (CMD, no shell in the image)", test)
	}
}
