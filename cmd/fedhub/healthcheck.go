package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"
)

// defaultHealthURL is the readiness endpoint on the default management listener.
const defaultHealthURL = "http://127.0.0.1:9000/readyz"

// healthcheck asks a running fedhub's readiness endpoint, for a container's
// healthcheck: the runtime image has no shell and no HTTP client of its own.
func healthcheck(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) > 1 {
		return errors.New("healthcheck takes one URL at most: fedhub healthcheck [" + defaultHealthURL + "]")
	}
	url := defaultHealthURL
	if len(args) == 1 {
		url = args[0]
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("healthcheck: %s answered %s: %s", url, resp.Status, body)
	}
	fmt.Fprintf(stdout, "%s: ready\n", url)
	return nil
}
