// Command configdoc writes docs/configuration.md, the reference of cloudcore's and edgecore's
// configuration files, from their Go types: the keys and their types by reflection on the
// config structs, the defaults from config.Default() as --defaultconfig prints them, and each
// key's description from its field's doc comment in the source. A field without a doc comment
// is an error, so the reference cannot silently fall behind the code.
//
// hack/update-codegen.sh runs it; hack/verify-codegen.sh fails when the file is stale.
package main

import (
	"flag"
	"fmt"
	"os"
)

func main() {
	root := flag.String("root", ".", "the module's root directory (its sources hold the doc comments)")
	out := flag.String("o", "", "write the reference to this file instead of stdout")
	flag.Parse()
	if flag.NArg() > 0 {
		fail(fmt.Errorf("unexpected arguments %q", flag.Args()))
	}
	b, err := generate(*root)
	if err != nil {
		fail(err)
	}
	if *out == "" {
		_, err = os.Stdout.Write(b)
	} else {
		err = os.WriteFile(*out, b, 0o644)
	}
	if err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintf(os.Stderr, "configdoc: %v\n", err)
	os.Exit(1)
}
