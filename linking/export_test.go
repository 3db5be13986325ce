package linking

// SetSearchFew sets how many links make a connector's users fetched by
// their links in Search, so that small tests take both ways.
func SetSearchFew(n int) (restore func()) {
	old := searchFew
	searchFew = n
	return func() { searchFew = old }
}
