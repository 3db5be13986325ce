package linking

// SetSearchFew sets how many links make a connector's users fetched by
// their links in Search, and up to how many they are looked up in a hash,
// so that small tests take every way.
func SetSearchFew(few, hashed int) (restore func()) {
	oldFew, oldHashed := searchFew, searchHashed
	searchFew, searchHashed = few, hashed
	return func() { searchFew, searchHashed = oldFew, oldHashed }
}
