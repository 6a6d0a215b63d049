package server

import "time"

// SetRevocationsStale shortens how long the node may go without reading
// revocations before it is not ready, for tests.
func (s *Server) SetRevocationsStale(d time.Duration) { s.staleAfter = d }
