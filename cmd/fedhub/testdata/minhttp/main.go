// Command minhttp is the smallest Go HTTP server answering fedhub's discovery
// path: BenchmarkStartup's baseline for start-up time and memory, measured
// in the same run on the same machine.
package main

import (
	"flag"
	"log"
	"net/http"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:8080", "listen address")
	flag.Parse()
	http.HandleFunc("/.well-known/openid-configuration", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"issuer":"http://` + *listen + `"}`))
	})
	log.Fatal(http.ListenAndServe(*listen, nil))
}
