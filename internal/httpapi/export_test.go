package httpapi

// InFlight is the number of requests being served that count toward
// limits.max_in_flight, for tests.
func (s *Server) InFlight() int64 { return s.shed.inFlight.Load() }

// RateLimitKeys is the number of clients and addresses with their own
// limits.rate bucket, for tests.
func (s *Server) RateLimitKeys() int { return s.clientRate.size() + s.addrRate.size() }

// SetMaxRateKeys bounds each of the rate limiter's tables to n keys, for tests.
func (s *Server) SetMaxRateKeys(n int) {
	for _, l := range []*limiter{s.clientRate, s.addrRate} {
		l.mu.Lock()
		l.maxKeys = n
		l.mu.Unlock()
	}
}

// SetRate sets limits.rate to perSecond (a fraction: slower than the config
// allows) and burst, for tests.
func (s *Server) SetRate(perSecond float64, burst int) {
	for _, l := range []*limiter{s.clientRate, s.addrRate} {
		l.mu.Lock()
		l.rate, l.burst = perSecond, float64(burst)
		l.mu.Unlock()
	}
}
