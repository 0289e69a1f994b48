// Package parallel runs test work with bounded concurrency, the way a
// runtime fires many CNI calls at once.
package parallel

import "sync"

// ForEach runs f for every i in [0,n) with at most par at once, and
// returns when all have returned.
func ForEach(n, par int, f func(i int)) {
	sem := make(chan struct{}, par)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			f(i)
		}()
	}
	wg.Wait()
}
