package httpapi

// InFlight is the number of requests being served that count toward
// limits.max_in_flight, for tests.
func (s *Server) InFlight() int64 { return s.shed.inFlight.Load() }

// RateLimitKeys is the number of addresses with their own limits.rate bucket,
// for tests.
func (s *Server) RateLimitKeys() int { return s.limiter.size() }

// SetMaxRateKeys bounds the rate limiter's table to n addresses, for tests.
func (s *Server) SetMaxRateKeys(n int) {
	s.limiter.mu.Lock()
	defer s.limiter.mu.Unlock()
	s.limiter.maxKeys = n
}
