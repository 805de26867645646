// Package images turns image lists, such as a workspace platform's
// external_images.txt or its dashboard's editors and samples, into an IMAGES
// value: merged, sorted, without repeats, each
// entry named <name>-<index> where <name> is the last path segment of the
// repository, lower-cased, '_' turned into '-', cut to a DNS-1123 label
// (falling back to "image"), and <index> its position, from 0. All of it is
// pure but Read, Fetch and FromDashboard, which fetch lists.
package images

import (
	"fmt"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"k8s.io/apimachinery/pkg/util/validation"
)

// Problem is a line of a list that is not an image reference.
type Problem struct {
	Source string
	Line   int
	Text   string
	Err    error
}

func (p Problem) String() string {
	return fmt.Sprintf("%s:%d: %q is not an image reference: %v", p.Source, p.Line, p.Text, p.Err)
}

// Public is String without the line's text, which a server sent: see Public.
func (p Problem) Public() string {
	return fmt.Sprintf("%s:%d: not an image reference", p.Source, p.Line)
}

// Parse reads one image reference per line; blank lines and lines starting
// with '#' are skipped. Lines that are not references are returned as problems.
func Parse(source, text string) ([]string, []Problem) {
	var refs []string
	var problems []Problem
	for i, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if _, err := name.ParseReference(line); err != nil {
			problems = append(problems, Problem{Source: source, Line: i + 1, Text: line, Err: err})
			continue
		}
		refs = append(refs, line)
	}
	return refs, problems
}

// Merge merges lists into one, sorted and without repeats, so that the
// IMAGES value does not depend on which source listed an image first.
func Merge(lists ...[]string) []string {
	var out []string
	for _, l := range lists {
		out = append(out, l...)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// EntryName is <name>-<index> for the reference at index.
func EntryName(ref string, index int) string {
	suffix := fmt.Sprintf("-%d", index)
	return baseName(ref, validation.DNS1123LabelMaxLength-len(suffix)) + suffix
}

// baseName is the last path segment of the repository, made a DNS-1123
// label of at most max characters, or "image".
func baseName(ref string, maxLen int) string {
	repo, _, _ := strings.Cut(ref, "@")
	if r, err := name.ParseReference(ref); err == nil {
		repo = r.Context().RepositoryStr()
	} else if i := strings.LastIndex(repo, ":"); i > strings.LastIndex(repo, "/") {
		repo = repo[:i] // a tag
	}
	seg := repo[strings.LastIndex(repo, "/")+1:]
	seg = strings.ReplaceAll(strings.ToLower(seg), "_", "-")
	var b strings.Builder
	for _, c := range seg {
		if (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' {
			b.WriteRune(c)
		}
	}
	s := b.String()
	s = strings.Trim(s[:min(len(s), maxLen)], "-")
	if s == "" || len(validation.IsDNS1123Label(s)) > 0 {
		return "image"
	}
	return s
}

// Value renders refs as an IMAGES value: name=image entries joined by ';'.
func Value(refs []string) string {
	entries := make([]string, len(refs))
	for i, ref := range refs {
		entries[i] = EntryName(ref, i) + "=" + ref
	}
	return strings.Join(entries, ";")
}
