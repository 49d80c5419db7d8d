package auth

import (
	"crypto/sha256"
	"strings"
	"unsafe"

	"github.com/gatehouse/gatehouse/authn"
	"github.com/gatehouse/gatehouse/token"
)

// Sizes of what a grant is made of, for its memory estimate.
const (
	sizeString   = int(unsafe.Sizeof(""))
	sizeSlice    = int(unsafe.Sizeof([]string(nil)))
	sizeScope    = int(unsafe.Sizeof(Scope{}))
	sizeAccess   = int(unsafe.Sizeof(token.Access{}))
	sizeDecision = int(unsafe.Sizeof(Decision{}))
	// sizeMapSlot is what one entry costs in the map: its key and value
	// pointer and a control byte, at a load between 7/16 and 7/8 (Go's
	// tables double when 7/8 full), counted at the worst.
	sizeMapSlot = (sha256.Size + 8 + 1) * 16 / 7
	// grantFixed is what every grant costs whatever it holds: the grant
	// and its Request, and its slot in the map.
	grantFixed = int(unsafe.Sizeof(grant{})) + int(unsafe.Sizeof(Request{})) + sizeMapSlot
)

// allocSize is what an allocation of n bytes costs: Go rounds it up to a
// size class, at most an eighth more above a few hundred bytes, and by up
// to 16 bytes below.
func allocSize(n int) int {
	if n == 0 {
		return 0
	}
	return n + n/8 + 16
}

// labelsSize estimates the memory of a labels map. The map is shared with
// the credential cache and the configuration, so this counts it again for
// every grant that refers to it: an estimate from above.
func labelsSize(l authn.Labels) int {
	if l == nil {
		return 0
	}
	n := 48 // the map header
	for k, vs := range l {
		n += (sizeString+sizeSlice)*16/7 + allocSize(len(k)) + allocSize(len(vs)*sizeString)
		for _, v := range vs {
			n += allocSize(len(v))
		}
	}
	return n
}

// newGrant makes the entry that remembers a request's answer: a copy of
// what the token endpoint needs, without the password, and its size
// (grant.size). Every string of the copy is in one allocation made for it,
// so the entry keeps alive nothing but itself: not the request line the
// scopes were cut from, nor the decoded Authorization header the account
// name was cut from (which holds the password), nor the ACL's slices. The
// labels (shared with the credential cache) and the rule comments (the
// configuration's) are not copied; the labels are counted.
func newGrant(req *Request, id identity, access []token.Access, decisions []Decision, complete bool) *grant {
	nActions := 0
	for i := range req.Scopes {
		nActions += len(req.Scopes[i].Actions)
	}
	for i := range access {
		nActions += len(access[i].Actions)
	}
	r := new(Request)
	*r = *req
	r.Password = ""
	e := &grant{req: r, id: id, complete: complete}
	var p packer
	p.add(&r.Grant, &r.Account, &r.Service, &r.ClientID, &r.RefreshToken, &e.id.Backend, &e.id.Credential)
	p.share(&e.id.Account, &r.Account)

	// Actions of scopes and access in one slice: it has room for all of
	// them, so the pointers the packer holds stay valid.
	acts := make([]string, 0, nActions)
	r.Scopes = make([]Scope, len(req.Scopes))
	for i, sc := range req.Scopes {
		start := len(acts)
		acts = append(acts, sc.Actions...)
		s := &r.Scopes[i]
		*s = Scope{Type: sc.Type, Name: sc.Name, Actions: acts[start:len(acts):len(acts)]}
		p.add(&s.Type, &s.Name)
		for j := range s.Actions {
			p.add(&s.Actions[j])
		}
	}
	e.access = make([]token.Access, len(access))
	for i, a := range access {
		start := len(acts)
		acts = append(acts, a.Actions...)
		c := &e.access[i]
		*c = token.Access{Type: a.Type, Name: a.Name, Actions: acts[start:len(acts):len(acts)]}
		var sc *Scope // the scope this access answers: the same index
		if i < len(r.Scopes) {
			sc = &r.Scopes[i]
		}
		if sc == nil {
			p.add(&c.Type, &c.Name)
		} else {
			p.share(&c.Type, &sc.Type)
			p.share(&c.Name, &sc.Name)
		}
		for j := range c.Actions {
			k := -1
			if sc != nil {
				k = indexOf(req.Scopes[i].Actions, c.Actions[j])
			}
			if k < 0 {
				p.add(&c.Actions[j])
			} else {
				p.share(&c.Actions[j], &sc.Actions[k])
			}
		}
	}
	e.decisions = make([]Decision, len(decisions))
	for i, d := range decisions {
		c := &e.decisions[i]
		*c = d // Comment is the rule's, ACL is empty or a literal: not copied
		p.add(&c.Scope)
		p.share(&c.Granted, &c.Scope)
	}
	p.pack()
	e.size = grantFixed + allocSize(p.text) + allocSize(nActions*sizeString) + allocSize(len(r.Scopes)*sizeScope) +
		allocSize(len(e.access)*sizeAccess) + allocSize(len(e.decisions)*sizeDecision) + labelsSize(e.id.Labels)
	return e
}

func indexOf(list []string, s string) int {
	for i, v := range list {
		if v == s {
			return i
		}
	}
	return -1
}

// packer gathers strings into one allocation: add marks string fields to
// be copied there, share marks a field that is a suffix of another (or
// equal to it) and will be cut from that one's copy; pack does it.
type packer struct {
	text   int       // bytes to copy
	fields []*string // in order
	shared []sharedField
}

type sharedField struct{ dst, src *string }

// add marks string fields to be copied.
func (p *packer) add(fields ...*string) {
	for _, f := range fields {
		if *f != "" {
			p.fields = append(p.fields, f)
			p.text += len(*f)
		}
	}
}

// share marks dst to be cut from src, a field given to add, when it is a
// suffix of it; else it is copied too.
func (p *packer) share(dst, src *string) {
	if *dst == "" || !strings.HasSuffix(*src, *dst) {
		p.add(dst)
		return
	}
	p.shared = append(p.shared, sharedField{dst, src})
}

// pack copies the fields to one new string and points them at it, then
// cuts each shared field from its source's copy.
func (p *packer) pack() {
	var b strings.Builder
	b.Grow(p.text)
	for _, f := range p.fields {
		b.WriteString(*f)
	}
	all, off := b.String(), 0
	for _, f := range p.fields {
		n := len(*f)
		*f = all[off : off+n]
		off += n
	}
	for _, s := range p.shared {
		*s.dst = (*s.src)[len(*s.src)-len(*s.dst):]
	}
}
