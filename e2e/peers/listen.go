package peers

import (
	"net"
	"time"
)

// Relisten listens on addr again after a peer that held it stopped (to test
// an upstream coming back on the same address), waiting up to two seconds
// for the kernel to free it.
func Relisten(addr string) (net.Listener, error) {
	var err error
	for range 20 {
		var ln net.Listener
		if ln, err = net.Listen("tcp", addr); err == nil {
			return ln, nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return nil, err
}
