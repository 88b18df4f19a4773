"""llama.cpp's GGUF file types: the quantize backend's choices and the report's bit widths."""

# type name -> (llama_ftype, nominal bits per weight of its main block type). K-quant "_M"/"_S"
# mixes keep some tensors at a higher type, and a row width that is not a multiple of 256 falls
# back from k-quants to a legacy type: the quantize record holds the measured bits and the types.
# Block sizes from ggml-common.h: Q8_0 34 bytes/32 weights, Q6_K 210/256, Q5_K 176/256, Q4_K 144/256,
# Q3_K 110/256, Q2_K 84/256, Q5_0 22/32, Q5_1 24/32, Q4_0 18/32, Q4_1 20/32.
TYPES = {
    "F32": (0, 32.0), "F16": (1, 16.0), "BF16": (32, 16.0),
    "Q8_0": (7, 8.5), "Q6_K": (18, 6.5625),
    "Q5_K_M": (17, 5.5), "Q5_K_S": (16, 5.5), "Q5_1": (9, 6.0), "Q5_0": (8, 5.5),
    "Q4_K_M": (15, 4.5), "Q4_K_S": (14, 4.5), "Q4_1": (3, 5.0), "Q4_0": (2, 4.5),
    "Q3_K_L": (13, 3.4375), "Q3_K_M": (12, 3.4375), "Q3_K_S": (11, 3.4375), "Q2_K": (10, 2.625),
}

# ggml tensor types (ggml.h's enum ggml_type) a method may give the token embedding and output head
# (llama_model_quantize_params.token_embedding_type / output_tensor_type): by default llama.cpp picks
# them per file type (Q8_0 or Q6_K for the k-quants), while the PyTorch schemes keep them in float;
# choosing F32/F16 here compares a GGUF body with another scheme's body, the embedding treated alike.
TENSOR_TYPES = {"F32": 0, "F16": 1, "Q8_0": 8, "Q6_K": 14, "Q5_K": 13, "Q4_K": 12, "Q4_0": 2}
