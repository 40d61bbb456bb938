package metaserver

import (
	"mime"
	"strings"
)

// outputForm is the shape a client asked for in Accept.
type outputForm int

const (
	formObject  outputForm = iota // the objects themselves (JSON)
	formTable                     // meta.k8s.io/v1 Table
	formPartial                   // meta.k8s.io/v1 PartialObjectMetadata(List)
)

// maxAcceptEntries bounds the parsing of a hostile Accept header.
const maxAcceptEntries = 16

// negotiate picks the first form in Accept this server can produce: Table or
// PartialObjectMetadata in meta.k8s.io/v1, else plain JSON. Media types other than JSON
// (protobuf, CBOR) are answered with JSON too; clients that offer them also accept JSON and
// decode by the response's Content-Type.
func negotiate(accept string) outputForm {
	for i, part := range strings.SplitN(accept, ",", maxAcceptEntries+1) {
		if i == maxAcceptEntries {
			break
		}
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil || (mt != "application/json" && mt != "*/*") {
			continue
		}
		if params["g"] == "" && params["as"] == "" {
			return formObject
		}
		if params["g"] != "meta.k8s.io" || params["v"] != "v1" {
			continue
		}
		switch params["as"] {
		case "Table":
			return formTable
		case "PartialObjectMetadata", "PartialObjectMetadataList":
			return formPartial
		}
	}
	return formObject
}
