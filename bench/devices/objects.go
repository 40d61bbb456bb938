package main

import (
	"encoding/json"
	"fmt"
)

// The benchmark's devices: one model with a FLOAT property, devices reporting it to the
// cloud every reportCycle ms. The same JSON goes into the edge store (twin benchmark) and
// through the API server (cloud benchmark).

const benchProtocol = "bench"

func modelJSON(namespace string) string {
	return fmt.Sprintf(`{"apiVersion":"devices.kubeedge.io/v1beta1","kind":"DeviceModel",
 "metadata":{"name":"bench-model","namespace":%q,"uid":"bench-model-uid"},
 "spec":{"protocol":%q,"properties":[{"name":"temperature","type":"FLOAT","accessMode":"ReadOnly"}]}}`,
		namespace, benchProtocol)
}

func deviceJSON(namespace, name, node string, reportCycleMS int64) string {
	return fmt.Sprintf(`{"apiVersion":"devices.kubeedge.io/v1beta1","kind":"Device",
 "metadata":{"name":%q,"namespace":%q,"uid":"uid-%s-%s"},
 "spec":{"deviceModelRef":{"name":"bench-model"},"nodeName":%q,"protocol":{"protocolName":%q},
  "properties":[{"name":"temperature","reportToCloud":true,"reportCycle":%d}]}}`,
		name, namespace, namespace, name, node, benchProtocol, reportCycleMS)
}

// decode fills v from one of the JSON documents above.
func decode(doc string, v any) error {
	if err := json.Unmarshal([]byte(doc), v); err != nil {
		return fmt.Errorf("benchmark object: %w", err)
	}
	return nil
}
