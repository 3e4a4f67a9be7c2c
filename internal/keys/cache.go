package keys

import (
	"container/list"
	"time"
)

// lru is a size-bounded map whose entries also expire. It is not safe for
// concurrent use; the Store guards it with its mutex.
type lru[K comparable, V any] struct {
	capacity int
	order    *list.List // front: most recently used
	items    map[K]*list.Element
}

type lruItem[K comparable, V any] struct {
	key     K
	value   V
	expires time.Time
}

func newLRU[K comparable, V any](capacity int) *lru[K, V] {
	return &lru[K, V]{capacity: capacity, order: list.New(), items: make(map[K]*list.Element)}
}

// get returns the value for k unless it is missing or expired at now; an
// expired entry is removed.
func (c *lru[K, V]) get(k K, now time.Time) (V, bool) {
	el, ok := c.items[k]
	if !ok {
		var zero V
		return zero, false
	}
	it := el.Value.(*lruItem[K, V])
	if !now.Before(it.expires) {
		c.order.Remove(el)
		delete(c.items, k)
		var zero V
		return zero, false
	}
	c.order.MoveToFront(el)
	return it.value, true
}

// put stores v for k until expires, evicting the least recently used entry
// when the cache is full.
func (c *lru[K, V]) put(k K, v V, expires time.Time) {
	if el, ok := c.items[k]; ok {
		it := el.Value.(*lruItem[K, V])
		it.value, it.expires = v, expires
		c.order.MoveToFront(el)
		return
	}
	for c.order.Len() >= c.capacity {
		last := c.order.Back()
		c.order.Remove(last)
		delete(c.items, last.Value.(*lruItem[K, V]).key)
	}
	c.items[k] = c.order.PushFront(&lruItem[K, V]{key: k, value: v, expires: expires})
}

// deleteFunc removes every entry for which match returns true.
func (c *lru[K, V]) deleteFunc(match func(K, V) bool) {
	for el := c.order.Front(); el != nil; {
		next := el.Next()
		it := el.Value.(*lruItem[K, V])
		if match(it.key, it.value) {
			c.order.Remove(el)
			delete(c.items, it.key)
		}
		el = next
	}
}

func (c *lru[K, V]) len() int { return c.order.Len() }
