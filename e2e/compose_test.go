package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

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
			Image       string            `yaml:"image"`
			Build       string            `yaml:"build"`
			DependsOn   []string          `yaml:"depends_on"`
			Environment map[string]string `yaml:"environment"`
			Volumes     []string          `yaml:"volumes"`
			Ports       []string          `yaml:"ports"`
		} `yaml:"services"`
		Volumes map[string]any `yaml:"volumes"`
	}
	dec := yaml.NewDecoder(strings.NewReader(string(raw)))
	dec.KnownFields(true)
	if err := dec.Decode(&compose); err != nil {
		t.Fatalf("docker-compose.yml does not parse: %v", err)
	}
	ldap, ok := compose.Services["openldap"]
	if !ok || !strings.Contains(ldap.Image, "openldap") {
		t.Fatalf("no OpenLDAP service: %+v", compose.Services)
	}
	fh, ok := compose.Services["fedhub"]
	if !ok || fh.Build != "." || len(fh.DependsOn) == 0 || fh.DependsOn[0] != "openldap" {
		t.Fatalf("fedhub service must build this repository and depend on openldap: %+v", fh)
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
