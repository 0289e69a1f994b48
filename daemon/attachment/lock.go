package attachment

import "sync"

// locks serialises the verbs of one attachment: an ADD's clean-up of an
// earlier attempt, a DEL and a CHECK of the same identity never interleave,
// while different attachments run fully in parallel.
type locks struct {
	mu   sync.Mutex
	held map[ID]*idLock
}

type idLock struct {
	mu   sync.Mutex
	refs int
}

// lock blocks until id is free and returns the function that frees it.
func (l *locks) lock(id ID) (unlock func()) {
	l.mu.Lock()
	if l.held == nil {
		l.held = map[ID]*idLock{}
	}
	e := l.held[id]
	if e == nil {
		e = &idLock{}
		l.held[id] = e
	}
	e.refs++
	l.mu.Unlock()

	e.mu.Lock()
	return func() {
		e.mu.Unlock()
		l.mu.Lock()
		if e.refs--; e.refs == 0 {
			delete(l.held, id)
		}
		l.mu.Unlock()
	}
}
