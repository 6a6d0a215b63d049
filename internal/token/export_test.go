package token

// DisableCache makes s verify every token in full, for comparisons.
func DisableCache(s *Service) { s.cache = nil }

// CacheLen is how many verified tokens s remembers.
func CacheLen(s *Service) int { return s.cache.len() }

// SetCacheEntries replaces s's cache with an empty one of at most n entries.
func SetCacheEntries(s *Service, n int) { s.cache = newVerifiedCache(n) }
