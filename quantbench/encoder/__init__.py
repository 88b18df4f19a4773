"""Sentence encoders (BERT-architecture models) as a model kind: quantize with each method or record
why the library refuses, embed a set of real sentences, compare with the unquantized embeddings.

The comparison this project reproduces says bitsandbytes "works out of the box for any modality" and
GPTQ "has been designed to support only language models"; these modules test that on an encoder."""
