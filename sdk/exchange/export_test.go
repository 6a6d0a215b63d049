package exchange

// CacheLen is the number of cached tokens, fresh or not, for the tests of package
// exchange_test.
func CacheLen(e *Exchanger) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.cache)
}
