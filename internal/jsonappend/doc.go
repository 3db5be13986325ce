// Package jsonappend appends JSON for the values a token is made of — a
// claims object and its strings, integers, booleans and string lists — to a
// byte slice, without encoding/json's reflection: its map encoder allocated
// for every key and value and sorted through reflect, for each token issued.
//
// Its output is byte for byte what json.Marshal gives: anything but the
// common shapes (floats, other maps, Marshalers, named types) and any string
// that would need escaping are handed to json.Marshal itself.
package jsonappend
