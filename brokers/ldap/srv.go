package ldap

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"
)

// srvCacheFor is how long SRV records found are used before they are looked up again. Go's
// resolver caches nothing, and a login needs the list twice.
const srvCacheFor = time.Minute

// srvURLs looks up _ldap._tcp.DOMAIN and returns ldap:// URLs in the order to try them, a
// new order each time. When the lookup fails, the records found last are used, however old.
func (c *Connector) srvURLs(ctx context.Context) ([]string, error) {
	c.srvMu.Lock()
	records, fresh := c.srvRecords, time.Since(c.srvAt) < srvCacheFor
	c.srvMu.Unlock()
	if !fresh || len(records) == 0 {
		_, found, err := c.lookupSRV(ctx, "ldap", "tcp", c.cfg.SRV)
		switch {
		case len(found) > 0:
			records = found
			c.srvMu.Lock()
			c.srvRecords, c.srvAt = found, time.Now()
			c.srvMu.Unlock()
		case len(records) > 0:
			c.log.WarnContext(ctx, "ldap: srv lookup failed, using the servers found before", "domain", c.cfg.SRV, "error", err)
		case err != nil:
			return nil, fmt.Errorf("srv lookup _ldap._tcp.%s: %w", c.cfg.SRV, err)
		}
	}
	var urls []string
	for _, r := range orderSRV(records, nil) {
		host := strings.TrimSuffix(r.Target, ".")
		urls = append(urls, "ldap://"+net.JoinHostPort(host, strconv.Itoa(int(r.Port))))
	}
	if len(urls) == 0 {
		return nil, fmt.Errorf("srv lookup _ldap._tcp.%s: no server listed", c.cfg.SRV)
	}
	return urls, nil
}

// orderSRV returns records in the order RFC 2782 says to try them: lowest priority first;
// within one priority, repeatedly a random pick weighted by weight (weight 0 having a small
// chance only when some others have weight). A target of "." ("service not available here")
// is left out. r is the source of randomness; nil uses math/rand/v2's global one.
func orderSRV(records []*net.SRV, r *rand.Rand) []*net.SRV {
	intN, shuffle := rand.IntN, rand.Shuffle
	if r != nil {
		intN, shuffle = r.IntN, r.Shuffle
	}
	var recs []*net.SRV
	for _, rec := range records {
		if rec != nil && rec.Target != "." && rec.Target != "" {
			recs = append(recs, rec)
		}
	}
	slices.SortStableFunc(recs, func(a, b *net.SRV) int { return int(a.Priority) - int(b.Priority) })

	out := make([]*net.SRV, 0, len(recs))
	for start := 0; start < len(recs); {
		end := start
		for end < len(recs) && recs[end].Priority == recs[start].Priority {
			end++
		}
		// RFC 2782: order the group arbitrarily (here: randomly, so that servers of weight 0
		// share the load), except that weight-0 records come first.
		group := slices.Clone(recs[start:end])
		shuffle(len(group), func(i, j int) { group[i], group[j] = group[j], group[i] })
		slices.SortStableFunc(group, func(a, b *net.SRV) int {
			return min(int(a.Weight), 1) - min(int(b.Weight), 1)
		})
		for len(group) > 0 {
			sum := 0
			for _, rec := range group {
				sum += int(rec.Weight)
			}
			// A uniform number in [0, sum]; the first record whose running sum reaches it.
			n := intN(sum + 1)
			i, running := 0, 0
			for ; i < len(group)-1; i++ {
				running += int(group[i].Weight)
				if running >= n {
					break
				}
			}
			out = append(out, group[i])
			group = slices.Delete(group, i, i+1)
		}
		start = end
	}
	return out
}
