// Package data turns text into the token data dtrain trains on and reads
// it back: the GPT-2 tokenizer, streaming document sources, tokenizing
// into llm.c's .bin token shards, the prepared-data cache, and the cutting
// of token streams into training and evaluation windows.
//
// Inputs are a file or a directory walked recursively (files in path
// order, hidden ones skipped): .txt (one document per file, streamed in
// chunks of at most 1 MiB), .jsonl (a string "text" field per line),
// .parquet (a "text" column, as in HuggingFace datasets), .txt.gz and
// .jsonl.gz, and llm.c .bin shards, which are tokens already. Prepare
// writes each document as [EOT] + its tokens, as llm.c's fineweb.py does.
//
// With no data of their own, users get BuiltinCorpus ("builtin:gosrc"):
// the Go standard library's source from the GOROOT of the Go that built
// or runs dtrain, present on every machine that can build it, so training
// works offline with nothing downloaded. It is every .go file under
// GOROOT/src except tests, testdata/, vendor/ and generated files, each
// file one document. With Go 1.26 that is about 3,400 files, 28.6 MB of
// text and 11.5 M GPT-2 tokens: enough that a small model trained for
// minutes on a CPU (a few thousand tokens/s) sees each token at most once,
// and small enough to tokenize in about 10 s on two cores.
package data
