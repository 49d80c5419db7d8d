package acl

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// Fields an acl_mongo document and its match may have. Anything else is an
// error: a misspelt match key would otherwise be ignored and widen the rule
// to every request.
var (
	ruleDocFields    = []string{"_id", "seq", "match", "actions", "comment"}
	mongoMatchFields = []string{"account", "type", "name", "service", "ip", "labels"}
)

// parseMongoDocs checks and decodes the documents and returns them sorted by
// seq. Every problem is reported, each naming its document.
func parseMongoDocs(raws [][]byte) ([]ruleDoc, error) {
	docs := make([]ruleDoc, 0, len(raws))
	var errs []error
	for i, raw := range raws {
		d, err := parseMongoDoc(raw)
		if err != nil {
			name := d.name
			if name == "" {
				name = "#" + strconv.Itoa(i)
			}
			errs = append(errs, fmt.Errorf("mongo: acl document %s: %w", name, err))
			continue
		}
		docs = append(docs, d)
	}
	errs = append(errs, sortDocs(docs, "mongo: acl documents")...)
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return docs, nil
}

// parseMongoDoc checks one document. The returned name is set as soon as
// the document's identity is known, also on error.
func parseMongoDoc(raw bson.Raw) (ruleDoc, error) {
	var d ruleDoc
	id := raw.Lookup("_id")
	idText := "without _id"
	if id.Type != 0 {
		idText = "_id " + id.String()
	}
	d.name = "(" + idText + ")"
	seqVal := raw.Lookup("seq")
	if seqVal.Type == 0 {
		return d, errors.New("seq is required (a number giving the rule's position)")
	}
	seq, ok := integral(seqVal)
	if !ok {
		return d, fmt.Errorf("seq must be an integer, got %s", seqVal)
	}
	d.seq = seq
	d.name = fmt.Sprintf("seq %d (%s)", seq, idText)

	if err := checkFields(raw, ruleDocFields, ""); err != nil {
		return d, err
	}
	if m := raw.Lookup("match"); m.Type == bson.TypeEmbeddedDocument {
		if err := checkFields(m.Document(), mongoMatchFields, "match."); err != nil {
			return d, err
		}
		if l := m.Document().Lookup("labels"); l.Type == bson.TypeEmbeddedDocument {
			if err := checkFields(l.Document(), nil, "match.labels."); err != nil {
				return d, err
			}
		}
	}
	if err := bson.Unmarshal(raw, &d.rule); err != nil {
		return d, fmt.Errorf("decode: %w", err)
	}
	return d, nil
}

// checkFields rejects fields outside allowed (nil allows any name) and null
// values, which would decode as absent and match every request.
func checkFields(doc bson.Raw, allowed []string, prefix string) error {
	elems, err := doc.Elements()
	if err != nil {
		return fmt.Errorf("malformed document: %w", err)
	}
	for _, e := range elems {
		key := e.Key()
		if allowed != nil && !slices.Contains(allowed, key) {
			return fmt.Errorf("unknown field %q (known: %v)", prefix+key, allowed)
		}
		if e.Value().Type == bson.TypeNull {
			if strings.HasPrefix(prefix, "match.") {
				return fmt.Errorf("%s is null, which would match every request; remove the field or give it a value", prefix+key)
			}
			return fmt.Errorf("%s is null; give it a value", prefix+key)
		}
	}
	return nil
}

// integral returns v as an int64 when it is an integer: int32, int64, or a
// double without a fraction (what mongoimport and the shell write).
func integral(v bson.RawValue) (int64, bool) {
	switch v.Type {
	case bson.TypeInt32:
		return int64(v.Int32()), true
	case bson.TypeInt64:
		return v.Int64(), true
	case bson.TypeDouble:
		f := v.Double()
		if f == math.Trunc(f) && math.Abs(f) < 1<<53 {
			return int64(f), true
		}
	}
	return 0, false
}
