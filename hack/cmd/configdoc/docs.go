package main

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// typeDocs are the doc comments of one struct type and of its fields, by Go field name.
type typeDocs struct {
	doc    string
	fields map[string]string
}

// docIndex reads doc comments from the module's Go source, one package directory at a time.
type docIndex struct {
	root, module string
	pkgs         map[string]map[string]*typeDocs // import path -> type name -> docs
}

func newDocIndex(root, module string) *docIndex {
	return &docIndex{root: root, module: module, pkgs: map[string]map[string]*typeDocs{}}
}

// lookup returns the docs of type name in the package at import path pkg, or nil when the
// package is outside the module or has no such struct type.
func (x *docIndex) lookup(pkg, name string) (*typeDocs, error) {
	types, ok := x.pkgs[pkg]
	if !ok {
		rel, inModule := strings.CutPrefix(pkg, x.module)
		if !inModule || (rel != "" && !strings.HasPrefix(rel, "/")) {
			return nil, nil
		}
		var err error
		if types, err = parsePackage(filepath.Join(x.root, filepath.FromSlash(rel))); err != nil {
			return nil, err
		}
		x.pkgs[pkg] = types
	}
	return types[name], nil
}

// parsePackage collects the docs of every struct type declared in dir's Go files (test files
// included: the generator's own tests declare fixtures there).
func parsePackage(dir string) (map[string]*typeDocs, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("read package sources: %w", err)
	}
	fset := token.NewFileSet()
	types := map[string]*typeDocs{}
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".go") {
			continue
		}
		f, err := parser.ParseFile(fset, filepath.Join(dir, e.Name()), nil, parser.ParseComments)
		if err != nil {
			return nil, err
		}
		for _, decl := range f.Decls {
			gd, ok := decl.(*ast.GenDecl)
			if !ok || gd.Tok != token.TYPE {
				continue
			}
			for _, spec := range gd.Specs {
				ts := spec.(*ast.TypeSpec)
				st, ok := ts.Type.(*ast.StructType)
				if !ok {
					continue
				}
				doc := ts.Doc.Text()
				if doc == "" && len(gd.Specs) == 1 {
					doc = gd.Doc.Text()
				}
				types[ts.Name.Name] = &typeDocs{doc: oneLine(doc), fields: fieldDocs(st, oneLine(doc))}
			}
		}
	}
	return types, nil
}

// fieldDocs returns each named field's doc. A field without a comment of its own takes the
// comment of an earlier field, or of its type, that names it ("QPS and Burst bound ..."), the
// way such groups are written in this code base.
func fieldDocs(st *ast.StructType, typeDoc string) map[string]string {
	docs := map[string]string{}
	var previous []string
	for _, f := range st.Fields.List {
		text := oneLine(f.Doc.Text())
		if text == "" {
			text = oneLine(f.Comment.Text())
		}
		if text != "" {
			previous = append(previous, text)
		}
		for _, n := range f.Names {
			d := text
			if d == "" {
				d = mentioning(n.Name, previous)
			}
			if d == "" {
				d = mentioning(n.Name, []string{typeDoc})
			}
			docs[n.Name] = d
		}
	}
	return docs
}

// mentioning returns the last of docs that names field as a word, or "".
func mentioning(field string, docs []string) string {
	re := regexp.MustCompile(`\b` + regexp.QuoteMeta(field) + `\b`)
	for i := len(docs) - 1; i >= 0; i-- {
		if re.MatchString(docs[i]) {
			return docs[i]
		}
	}
	return ""
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// moduleOf reads the module path from root/go.mod.
func moduleOf(root string) (string, error) {
	b, err := readLimited(filepath.Join(root, "go.mod"), 1<<20)
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if m, ok := strings.CutPrefix(strings.TrimSpace(line), "module "); ok {
			return strings.Trim(strings.TrimSpace(m), `"`), nil
		}
	}
	return "", fmt.Errorf("%s/go.mod: no module line", root)
}

func readLimited(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if fi.Size() > limit {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, limit)
	}
	b := make([]byte, fi.Size())
	_, err = io.ReadFull(f, b)
	return b, err
}
