package peer

import (
	"errors"
	"fmt"
	"path"
	"strings"
)

// Exclude is a list of gitignore-style patterns that leave paths out of a
// send (see CollectExcluding). The nil *Exclude excludes nothing. It is
// safe for concurrent use: Match does not change it.
//
// A pattern is matched against the path as it is offered: relative,
// slash-separated, starting with the base name of the file or folder
// named on the command line ("photos/2024/a.jpg" for a file in the folder
// photos). As in a .gitignore at the top of what arrives:
//   - a pattern without a slash, or with one only at its end, matches a
//     name at any depth: "*.tmp", "node_modules/";
//   - any other pattern is anchored at the top: "/build" is a top-level
//     build, "photos/raw" the folder raw in photos;
//   - a trailing slash matches folders only;
//   - "*" matches any run of characters but "/", "?" one character but
//     "/", "[a-z]" and "[!a-z]" (or "[^a-z]") one character of a class;
//     a backslash makes the next character literal ("\*", "\!", "\#");
//   - "**" as a whole path segment matches any number of segments: a
//     leading "**/" any folder ("**/cache"), a trailing "/**" everything
//     inside ("logs/**"), "a/**/b" a, b, and every depth between;
//   - a leading "!" brings back what an earlier pattern excluded: the last
//     pattern that matches a path decides. Nothing inside an excluded
//     folder comes back, as with git: the folder is not walked at all.
//
// Patterns are case-sensitive. Unlike a .gitignore line, a pattern keeps
// its spaces and has no comments.
type Exclude struct {
	rules []excludeRule
}

// excludeRule is one parsed pattern.
type excludeRule struct {
	pattern string   // as given, for messages
	segs    []string // path.Match patterns per path segment, or "**"
	negate  bool     // "!": brings back what it matches
	dirOnly bool     // trailing "/": matches folders only
}

// MaxExcludePatterns caps how many patterns an Exclude takes, and
// maxExcludeLen how long each may be.
const (
	MaxExcludePatterns = 1000
	maxExcludeLen      = 4096
)

// NewExclude parses patterns (see Exclude). An empty or malformed pattern
// ("[a-", "!", "/") is an error wrapping ErrBadPattern that names it. No
// patterns give nil, which excludes nothing.
func NewExclude(patterns []string) (*Exclude, error) {
	if len(patterns) == 0 {
		return nil, nil
	}
	if len(patterns) > MaxExcludePatterns {
		return nil, fmt.Errorf("%w: %d patterns, at most %d", ErrBadPattern, len(patterns), MaxExcludePatterns)
	}
	e := &Exclude{}
	for _, p := range patterns {
		r, err := parseExclude(p)
		if err != nil {
			return nil, fmt.Errorf("%w %s: %s", ErrBadPattern, Escape(p), err)
		}
		e.rules = append(e.rules, r)
	}
	return e, nil
}

func parseExclude(p string) (excludeRule, error) {
	r := excludeRule{pattern: p}
	if len(p) > maxExcludeLen {
		return r, fmt.Errorf("longer than %d bytes", maxExcludeLen)
	}
	s := p
	if strings.HasPrefix(s, "!") {
		r.negate, s = true, s[1:]
	}
	if strings.HasSuffix(s, "/") {
		r.dirOnly, s = true, strings.TrimRight(s, "/")
	}
	anchored := strings.HasPrefix(s, "/")
	s = strings.TrimLeft(s, "/")
	if s == "" {
		return r, fmt.Errorf("matches nothing")
	}
	// A slash left in the middle anchors the pattern at the top, as in
	// a .gitignore; a name alone matches at any depth.
	if strings.Contains(s, "/") {
		anchored = true
	}
	segs := strings.Split(s, "/")
	for i, seg := range segs {
		switch {
		case seg == "":
			return r, fmt.Errorf("has an empty path segment (//)")
		case seg == "**":
			continue
		case seg == "." || seg == "..":
			return r, fmt.Errorf("has a %q segment: offered paths have none", seg)
		}
		seg = fnmatchClass(seg)
		if _, err := path.Match(seg, ""); err != nil {
			return r, fmt.Errorf("malformed (an unclosed [ or a trailing \\?)")
		}
		segs[i] = seg
	}
	if !anchored {
		segs = append([]string{"**"}, segs...)
	}
	r.segs = segs
	return r, nil
}

// fnmatchClass turns a character class's "[!" (fnmatch's negation, which
// gitignore uses) into path.Match's "[^".
func fnmatchClass(seg string) string {
	var b strings.Builder
	inClass := false
	for i := 0; i < len(seg); i++ {
		c := seg[i]
		switch {
		case c == '\\' && i+1 < len(seg):
			b.WriteByte(c)
			i++
			b.WriteByte(seg[i])
			continue
		case !inClass && c == '[':
			inClass = true
			b.WriteByte(c)
			if i+1 < len(seg) && seg[i+1] == '!' {
				b.WriteByte('^')
				i++
			}
			continue
		case inClass && c == ']':
			inClass = false
		}
		b.WriteByte(c)
	}
	return b.String()
}

// Match reports whether the offered path rel (slash-separated, relative;
// a folder when dir is set) is excluded by itself: the last pattern that
// matches it decides. It does not look at rel's parent folders: a walk
// that leaves out an excluded folder never asks about what is in it.
func (e *Exclude) Match(rel string, dir bool) bool {
	if e == nil {
		return false
	}
	name := strings.Split(rel, "/")
	excluded := false
	for _, r := range e.rules {
		if r.negate == !excluded || r.dirOnly && !dir {
			// It could not change the verdict.
			continue
		}
		if matchSegments(r.segs, name) {
			excluded = !r.negate
		}
	}
	return excluded
}

// matchSegments reports whether the path segments name match pat, whose
// "**" segments match any number of segments (a trailing one at least
// one: "logs/**" is what is inside logs, not logs). Each pair of
// positions is tried once, so a pattern of many "**" costs at most
// len(pat)·len(name)² segment matches, never a search that grows with
// their combinations.
func matchSegments(pat, name []string) bool {
	failed := make(map[[2]int]bool)
	var match func(pi, ni int) bool
	match = func(pi, ni int) bool {
		for ; pi < len(pat); pi, ni = pi+1, ni+1 {
			if pat[pi] == "**" {
				if pi == len(pat)-1 {
					return ni < len(name)
				}
				if failed[[2]int{pi, ni}] {
					return false
				}
				for k := ni; k <= len(name); k++ {
					if match(pi+1, k) {
						return true
					}
				}
				failed[[2]int{pi, ni}] = true
				return false
			}
			if ni == len(name) {
				return false
			}
			if ok, _ := path.Match(pat[pi], name[ni]); !ok {
				return false
			}
		}
		return ni == len(name)
	}
	return match(0, 0)
}

// CollectExcluding is CollectSkipped leaving out what ex excludes (see
// Exclude): a path named in paths whose base name it excludes, and in a
// walked folder every file and folder it excludes, a folder with all it
// holds, unread. excluded lists the local paths left out that way (a
// folder once), which are not skipped paths: no warning is due. When ex
// leaves nothing, the error wraps ErrNothingToSend.
func CollectExcluding(paths []string, ex *Exclude) (items []Item, skipped []Skipped, excluded []string, err error) {
	c := collector{exclude: ex}
	items, skipped, err = c.collect(paths)
	if errors.Is(err, ErrNothingToSend) && len(c.excluded) > 0 {
		err = fmt.Errorf("%w: all of it is excluded (%d %s)", ErrNothingToSend, len(c.excluded), pluralWord(len(c.excluded), "path"))
	}
	return items, skipped, c.excluded, err
}

// excludes reports whether the collector leaves out the local path p,
// offered as rel, and records it if so.
func (c *collector) excludes(p, rel string, dir bool) bool {
	if !c.exclude.Match(rel, dir) {
		return false
	}
	c.excluded = append(c.excluded, p)
	return true
}
