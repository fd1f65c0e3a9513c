"""ctypes mirrors of the public structs of include/vitq.h (version 0.8).

Every struct is filled by this package itself (zeroed, struct_size = our sizeof, documented defaults)
instead of by the library's *_init(): a newer library would write its own, larger sizeof into a buffer
of our size. The library reads and writes only the members our struct_size covers (vitq.h, Contract).
"""
import ctypes

MAX_CHANNELS = 4
MAX_STAGES = 8

# int (*)(void *user, const char *stage, int64_t done, int64_t total)
PROGRESS_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int64, ctypes.c_int64)


class _Sized(ctypes.Structure):
    """A struct whose first member is uint32_t struct_size, set on creation."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.struct_size = ctypes.sizeof(self)


class ModelOptions(_Sized):
    _fields_ = [("struct_size", ctypes.c_uint32), ("allocator", ctypes.c_void_p), ("num_heads", ctypes.c_int32),
                ("layer_norm_eps", ctypes.c_float), ("gelu", ctypes.c_int32), ("image_size", ctypes.c_int32),
                ("num_mean", ctypes.c_int32), ("mean", ctypes.c_float * MAX_CHANNELS), ("num_std", ctypes.c_int32),
                ("std", ctypes.c_float * MAX_CHANNELS), ("config_json", ctypes.c_char_p),
                ("preprocessor_json", ctypes.c_char_p), ("num_threads", ctypes.c_int32),
                ("registry", ctypes.c_void_p), ("execution", ctypes.c_int32), ("allow_non_finite", ctypes.c_int32),
                ("progress", PROGRESS_FN), ("progress_user", ctypes.c_void_p)]


class ModelInfo(_Sized):
    _fields_ = [("struct_size", ctypes.c_uint32), ("arch", ctypes.c_int32), ("layout", ctypes.c_int32),
                ("image_size", ctypes.c_int32), ("patch_size", ctypes.c_int32), ("in_channels", ctypes.c_int32),
                ("embed_dim", ctypes.c_int32), ("depth", ctypes.c_int32), ("num_heads", ctypes.c_int32),
                ("mlp_dim", ctypes.c_int32), ("num_classes", ctypes.c_int32), ("num_tokens", ctypes.c_int32),
                ("num_prefix_tokens", ctypes.c_int32), ("gelu", ctypes.c_int32), ("layer_norm_eps", ctypes.c_float),
                ("mean", ctypes.c_float * MAX_CHANNELS), ("std", ctypes.c_float * MAX_CHANNELS),
                ("num_params", ctypes.c_uint64), ("gflops", ctypes.c_double), ("num_stages", ctypes.c_int32),
                ("stage_depth", ctypes.c_int32 * MAX_STAGES), ("stage_dim", ctypes.c_int32 * MAX_STAGES),
                ("stage_heads", ctypes.c_int32 * MAX_STAGES), ("stage_window", ctypes.c_int32 * MAX_STAGES),
                ("stage_grid", ctypes.c_int32 * MAX_STAGES), ("num_quantized_points", ctypes.c_int32),
                ("num_integer_layers", ctypes.c_int32), ("num_integer_attentions", ctypes.c_int32),
                ("representation_size", ctypes.c_int32), ("num_integer_nonlinear", ctypes.c_int32),
                ("size_bytes", ctypes.c_uint64), ("average_weight_bits", ctypes.c_double)]


class DatasetInfo(_Sized):
    _fields_ = [("struct_size", ctypes.c_uint32), ("count", ctypes.c_uint64), ("height", ctypes.c_int32),
                ("width", ctypes.c_int32), ("channels", ctypes.c_int32), ("dtype", ctypes.c_int32),
                ("layout", ctypes.c_int32), ("has_labels", ctypes.c_int32)]


class CalibratorOptions(_Sized):
    _fields_ = [("struct_size", ctypes.c_uint32), ("allocator", ctypes.c_void_p), ("registry", ctypes.c_void_p),
                ("scheme", ctypes.c_char_p), ("weight_bits", ctypes.c_int32), ("activation_bits", ctypes.c_int32),
                ("edge_bits", ctypes.c_int32), ("seed", ctypes.c_uint64), ("progress", PROGRESS_FN),
                ("progress_user", ctypes.c_void_p), ("setting", ctypes.c_int32), ("nonlinear", ctypes.c_int32),
                ("target_bits", ctypes.c_double), ("target_bytes", ctypes.c_uint64),
                ("candidate_bits", ctypes.c_uint32), ("reconstruct", ctypes.c_int32), ("recon_iters", ctypes.c_int32),
                ("recon_batch", ctypes.c_int32), ("recon_drop", ctypes.c_double),
                ("recon_learn_steps", ctypes.c_int32), ("recon_loss", ctypes.c_int32),
                ("recon_augment", ctypes.c_int32)]


class CalibratorStats(_Sized):
    _fields_ = [("struct_size", ctypes.c_uint32), ("images", ctypes.c_uint64), ("seconds", ctypes.c_double),
                ("peak_bytes", ctypes.c_uint64)]


class PointInfo(_Sized):
    _fields_ = [("struct_size", ctypes.c_uint32), ("name", ctypes.c_char_p), ("kind", ctypes.c_int32),
                ("role", ctypes.c_int32), ("bits", ctypes.c_int32), ("granularity", ctypes.c_int32),
                ("symmetric", ctypes.c_int32), ("scheme", ctypes.c_char_p), ("channels", ctypes.c_int64),
                ("heads", ctypes.c_int64), ("observed_min", ctypes.c_float), ("observed_max", ctypes.c_float)]


class NonlinearInfo(_Sized):
    _fields_ = [("struct_size", ctypes.c_uint32), ("point", ctypes.c_char_p), ("op", ctypes.c_char_p),
                ("method", ctypes.c_int32), ("input_bits", ctypes.c_int32), ("input_scale", ctypes.c_double),
                ("dsqnr", ctypes.c_double * 3)]


class ReportRow(_Sized):
    _fields_ = [("struct_size", ctypes.c_uint32), ("point", ctypes.c_char_p), ("bits", ctypes.c_int32),
                ("sqnr_db", ctypes.c_double), ("min", ctypes.c_float), ("max", ctypes.c_float),
                ("output_cosine", ctypes.c_double)]


class SchemeOption(ctypes.Structure):
    """vitq_scheme_option (no struct_size: arrays of it are stepped by option_size)."""
    _fields_ = [("name", ctypes.c_char_p), ("help", ctypes.c_char_p), ("min_value", ctypes.c_double),
                ("max_value", ctypes.c_double), ("default_value", ctypes.c_double), ("is_integer", ctypes.c_int32)]


class MethodInfo(_Sized):
    _fields_ = [("struct_size", ctypes.c_uint32), ("name", ctypes.c_char_p), ("description", ctypes.c_char_p),
                ("num_options", ctypes.c_int32), ("options", ctypes.c_void_p), ("option_size", ctypes.c_uint32)]


class SchemeTable(ctypes.Structure):
    """vitq_scheme, only read through a pointer into the library (function pointers left opaque)."""
    _fields_ = [("struct_size", ctypes.c_uint32), ("abi_version", ctypes.c_uint32), ("name", ctypes.c_char_p),
                ("description", ctypes.c_char_p), ("num_passes", ctypes.c_int32), ("min_bits", ctypes.c_int32),
                ("max_bits", ctypes.c_int32), ("num_options", ctypes.c_int32), ("options", ctypes.c_void_p)] + \
        [(f, ctypes.c_void_p) for f in ("create", "destroy", "observe", "finalize", "fake_quant", "quantize",
                                        "dequantize", "param_count", "get_param", "set_param", "user")] + \
        [("option_size", ctypes.c_uint32), ("revision", ctypes.c_uint32)]


class TrainerOptions(_Sized):
    """vitq_trainer_options (0.12: seed; a 0.11 library reads the members up to resume_path)."""
    _fields_ = [("struct_size", ctypes.c_uint32), ("epochs", ctypes.c_int32), ("batch", ctypes.c_int32),
                ("crops", ctypes.c_int32), ("micro_batch", ctypes.c_int32), ("learning_rate", ctypes.c_double),
                ("weight_decay", ctypes.c_double), ("warmup_epochs", ctypes.c_double),
                ("regularizer", ctypes.c_double), ("temperature", ctypes.c_double), ("log_path", ctypes.c_char_p),
                ("progress", PROGRESS_FN), ("progress_user", ctypes.c_void_p), ("checkpoint_path", ctypes.c_char_p),
                ("resume_path", ctypes.c_char_p), ("seed", ctypes.c_uint64)]


class TrainerEpoch(_Sized):
    _fields_ = [("struct_size", ctypes.c_uint32), ("loss", ctypes.c_double), ("agreement", ctypes.c_double),
                ("regularizer", ctypes.c_double), ("flips", ctypes.c_double), ("oscillations", ctypes.c_double),
                ("seconds", ctypes.c_double)]
