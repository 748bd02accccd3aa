// Package data reads and writes the token data dtrain trains on: llm.c's
// .bin token shards, and the cutting of token streams into training and
// evaluation windows.
package data
