package dirsync_test

import (
	"context"
	"testing"
	"time"

	"github.com/fedhub/fedhub/linking"
	"github.com/fedhub/fedhub/store/storetest"
)

// benchEntries is how many directory entries one benchmark operation syncs.
const benchEntries = 1000

// BenchmarkImport measures the directory sync's import path on SQLite and
// PostgreSQL, in
// entries a second, and prints it against a baseline measured in the same
// run ("x-baseline": the sync's time over the baseline's): the same entries
// made into linked users one by one with CreateLinkedUser, a transaction
// each, as that many first logins would. That is the work the sync replaces,
// so the ratio shows what a transaction per page and reading a page of users
// at once are worth, whatever the machine's speed. "unchanged" is a second run
// over the same entries, which only reads and compares.
//
//	FEDHUB_TEST_PKGS=./dirsync/ bash scripts/test -run '^$' -bench Import
func BenchmarkImport(b *testing.B) {
	for _, driver := range storetest.Drivers {
		b.Run(driver, func(b *testing.B) { benchImport(b, driver) })
	}
}

func benchImport(b *testing.B, driver string) {
	baseline := benchBaseline(b, driver)
	b.Logf("baseline on %s: %d CreateLinkedUser in %v", driver, benchEntries, baseline)
	report := func(b *testing.B, elapsed time.Duration) {
		b.ReportMetric(float64(benchEntries*b.N)/elapsed.Seconds(), "entries/s")
		b.ReportMetric(float64(elapsed)/float64(b.N)/float64(baseline), "x-baseline")
	}
	b.Run("import", func(b *testing.B) {
		var elapsed time.Duration
		for range b.N {
			f := benchFixture(b, driver)
			start := time.Now()
			if c, err := f.syncer.Run(context.Background(), "corp", "bench", nil); err != nil || c.Created != benchEntries {
				b.Fatalf("Run = %+v, %v", c, err)
			}
			elapsed += time.Since(start)
		}
		report(b, elapsed)
	})
	b.Run("unchanged", func(b *testing.B) {
		f := benchFixture(b, driver)
		if _, err := f.syncer.Run(context.Background(), "corp", "bench", nil); err != nil {
			b.Fatal(err)
		}
		b.ResetTimer()
		for range b.N {
			if c, err := f.syncer.Run(context.Background(), "corp", "bench", nil); err != nil || c.Updated+c.Created != 0 {
				b.Fatalf("Run = %+v, %v", c, err)
			}
		}
		report(b, b.Elapsed())
	})
}

// benchFixture is a fresh database and a directory of benchEntries entries.
func benchFixture(b *testing.B, driver string) *fixture {
	f := newFixture(b, storetest.Open(b, driver, models()...), 0)
	f.dir.PageSize = 1000
	for n := range benchEntries {
		f.dir.Put(entry(n, "staff"))
	}
	return f
}

// benchBaseline creates the benchmark's users one by one, as first logins
// would, and returns how long that took.
func benchBaseline(b *testing.B, driver string) time.Duration {
	users := linking.New(storetest.Open(b, driver, models()...), time.Now)
	start := time.Now()
	for n := range benchEntries {
		id := entry(n, "staff").Identity
		_, err := users.CreateLinkedUser(context.Background(), linking.Upstream{Connector: "corp", Subject: id.Subject, Username: id.Username},
			linking.NewUser{Username: id.Username, Email: id.Email, Name: id.Name, Groups: []string{"staff"}, Source: "corp"})
		if err != nil {
			b.Fatal(err)
		}
	}
	return time.Since(start)
}
