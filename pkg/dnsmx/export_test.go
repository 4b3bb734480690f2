package dnsmx

import "time"

// SetClock sets the clock the DNS budget of r is measured with.
func SetClock(r *Resolver, now func() time.Time) { r.now = now }
