/*
 * vitq.h - post-training quantization and inference of Vision Transformers.
 *
 * This header is the whole public API and its reference manual: what is not declared here is not API.
 *
 * Contract
 *  - Every fallible function returns a vitq_status. VITQ_OK is 0; errors are positive. On failure a
 *    detail message naming the file, tensor or argument at fault is available from vitq_last_error()
 *    on the same thread. No function aborts, exits or longjmps, whatever its input.
 *  - Handles (vitq_model, vitq_dataset, ...) are opaque. Whoever creates one frees it with the
 *    matching vitq_*_free(), which accepts NULL.
 *  - One handle is used by one thread at a time; distinct handles are independent. A loaded model is
 *    never modified by inference, so several threads may run vitq_model_forward() on one model.
 *  - Memory comes from the vitq_allocator given at creation (NULL: malloc/free), which the handle keeps
 *    for its whole life. There is no global mutable state but three things set once: the instruction
 *    set the kernels use, chosen at the first kernel call from the CPU (cpuid) and the environment
 *    variable VITQ_ISA (generic, avx2 or avx512: a lower path for testing); the library's thread
 *    pool, started at the first parallel loop (its idle threads sleep; one caller's loop at a time,
 *    another caller meanwhile runs its loop on its own thread; joined at exit or dlclose; a forked
 *    child starts a fresh one); and, per thread, the detail of vitq_last_error().
 *  - Every public struct starts with `uint32_t struct_size`. Fill it with the matching *_init()
 *    function (or sizeof), so that a program built against this header keeps working with later
 *    library versions: the library accepts any struct_size from the size of the struct's first
 *    release (0.1) up, reads the members the caller's version has (the rest take their defaults) and
 *    writes only the members that fit. A smaller or absurd struct_size is VITQ_ERR_ABI_MISMATCH from
 *    every function. Arrays of structs have a stride: report rows the struct_size of rows[0], a
 *    scheme's options vitq_scheme.option_size.
 *  - Status values, enum values and struct members are append-only: treat unknown status values as a
 *    generic failure.
 */
#ifndef VITQ_H
#define VITQ_H

#include <stddef.h>
#include <stdint.h>

/* ---------------------------------------------------------------------------------------------- */
/* Version                                                                                         */
/* ---------------------------------------------------------------------------------------------- */

#define VITQ_VERSION_MAJOR 0
#define VITQ_VERSION_MINOR 12
#define VITQ_VERSION_PATCH 0
/** MAJOR*1000000 + MINOR*1000 + PATCH, comparable as an integer. */
#define VITQ_VERSION_NUMBER (VITQ_VERSION_MAJOR * 1000000 + VITQ_VERSION_MINOR * 1000 + VITQ_VERSION_PATCH)
#define VITQ_STRINGIFY_(x) #x
#define VITQ_STRINGIFY(x) VITQ_STRINGIFY_(x)
#define VITQ_VERSION_STRING                                                                        \
    VITQ_STRINGIFY(VITQ_VERSION_MAJOR) "." VITQ_STRINGIFY(VITQ_VERSION_MINOR) "." VITQ_STRINGIFY(  \
        VITQ_VERSION_PATCH)

#if defined(_WIN32) && defined(VITQ_SHARED)
#  ifdef VITQ_BUILDING
#    define VITQ_API __declspec(dllexport)
#  else
#    define VITQ_API __declspec(dllimport)
#  endif
#elif defined(__GNUC__) && __GNUC__ >= 4
#  define VITQ_API __attribute__((visibility("default")))
#else
#  define VITQ_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------------------------------------- */
/* Status codes (values are frozen; new ones are appended)                                          */
/* ---------------------------------------------------------------------------------------------- */

typedef enum vitq_status {
    VITQ_OK = 0,
    VITQ_ERR_GENERIC = 1,          /**< failure that fits no other code */
    VITQ_ERR_INVALID_ARGUMENT = 2, /**< NULL pointer, zero count, inconsistent sizes */
    VITQ_ERR_OUT_OF_MEMORY = 3,    /**< the allocator returned NULL (or a size overflowed) */
    VITQ_ERR_IO = 4,               /**< a file could not be opened, read or written */
    VITQ_ERR_TRUNCATED = 5,        /**< a file or buffer ends before its own header says it should */
    VITQ_ERR_FORMAT = 6,           /**< malformed header: bad JSON, bad magic, offsets out of bounds, overlap */
    VITQ_ERR_DTYPE = 7,            /**< a tensor or array has a dtype that is unknown or not allowed here */
    VITQ_ERR_SHAPE = 8,            /**< a tensor's shape disagrees with its bytes, the model or the input */
    VITQ_ERR_MISSING_TENSOR = 9,   /**< the checkpoint lacks a tensor the architecture needs */
    VITQ_ERR_UNEXPECTED_TENSOR = 10, /**< the checkpoint has a tensor vitq does not understand */
    VITQ_ERR_MISSING_CONFIG = 11,  /**< a hyper-parameter cannot be decided from any source */
    VITQ_ERR_CONFIG = 12,          /**< a hyper-parameter is invalid or sources contradict each other */
    VITQ_ERR_UNSUPPORTED = 13,     /**< a valid model or file variant vitq does not implement */
    VITQ_ERR_CORRUPT_DATA = 14,    /**< compressed data fails to decode or its checksum */
    VITQ_ERR_NON_FINITE = 15,      /**< NaN or infinity in an input, or in a checkpoint's weights */
    VITQ_ERR_BAD_STATE = 16,       /**< call out of order */
    VITQ_ERR_CANCELLED = 17,       /**< a callback asked to stop */
    VITQ_ERR_BUFFER_TOO_SMALL = 18, /**< the caller's buffer cannot hold the result */
    VITQ_ERR_UNKNOWN_NAME = 19,    /**< no scheme, option key or quantization point has this name */
    VITQ_ERR_OUT_OF_RANGE = 20,    /**< an option value is outside what the option or scheme accepts, or a label
                                        outside the model's classes */
    VITQ_ERR_ABI_MISMATCH = 21,    /**< a caller's struct or vtable has an unknown size or ABI version */
    /** the file asks for code execution or an object outside what a state dict holds (a PyTorch
     *  pickle naming a function or class vitq does not allow; nothing in it is ever run). Since 0.4. */
    VITQ_ERR_UNSAFE = 22
} vitq_status;

/** Short static English description of a status (never NULL, also for unknown values). */
VITQ_API const char *vitq_status_string(vitq_status status);

/** Name of the enum constant, e.g. "VITQ_ERR_SHAPE" (never NULL; "VITQ_ERR_UNKNOWN" if unknown). */
VITQ_API const char *vitq_status_name(vitq_status status);

/**
 * Detail of the last failure on the calling thread, e.g.
 * "model.safetensors: tensor 'blocks.3.attn.qkv.weight': shape [192,64] but 576x192 expected".
 * Never NULL (empty before any failure). Valid until the next vitq call on this thread.
 */
VITQ_API const char *vitq_last_error(void);

/** Run-time version: VITQ_VERSION_NUMBER of the library actually linked. */
VITQ_API uint32_t vitq_version(void);
/** Run-time version as "MAJOR.MINOR.PATCH". */
VITQ_API const char *vitq_version_string(void);

/** Bits of vitq_build_features(). */
#define VITQ_FEATURE_OPENMP 1u       /**< built with OpenMP (`make OPENMP=1`): its threads run the parallel loops */
#define VITQ_FEATURE_THREAD_LOCAL 2u /**< vitq_last_error() is per thread (else one shared buffer) */
#define VITQ_FEATURE_THREADS 4u      /**< forward passes can use several threads (own pool or OpenMP) */
/** Features this build of the library has. */
VITQ_API uint32_t vitq_build_features(void);

/* ---------------------------------------------------------------------------------------------- */
/* Memory                                                                                          */
/* ---------------------------------------------------------------------------------------------- */

/**
 * Where a handle gets its memory. `alloc` returns `size` bytes aligned to `align` (a power of two,
 * at most 64) or NULL; `free` releases a pointer from `alloc` (never called with NULL). A firmware
 * build can hand vitq a fixed arena this way. The struct is copied into each handle.
 */
typedef struct vitq_allocator {
    uint32_t struct_size; /**< sizeof(vitq_allocator) */
    void *(*alloc)(void *user, size_t size, size_t align);
    void (*free)(void *user, void *ptr);
    void *user;
} vitq_allocator;

/* ---------------------------------------------------------------------------------------------- */
/* Handles                                                                                         */
/* ---------------------------------------------------------------------------------------------- */

typedef struct vitq_model vitq_model;     /**< a loaded network (float weights) */
typedef struct vitq_dataset vitq_dataset; /**< a set of images, with optional labels */
typedef struct vitq_calibrator vitq_calibrator; /**< post-training calibration of one model */
typedef struct vitq_quantizer vitq_quantizer;   /**< one configured quantizer of one tensor */
typedef struct vitq_registry vitq_registry;     /**< the quantization schemes known to a calibrator */

/* ---------------------------------------------------------------------------------------------- */
/* Models                                                                                          */
/* ---------------------------------------------------------------------------------------------- */

/**
 * Progress of a long call: `done` of `total` units of `stage` are finished. Stages and their units:
 * "load" (steps: 0/2 before reading, 1/2 read, 2/2 built), "forward" (images,
 * vitq_model_forward_dataset), "report" (forward passes, vitq_model_report: 0 when it starts, then
 * one per pass), and the calibrator's
 * "calibrate" (batches of 8 images per pass), "search" (candidates scored), "noisy bias" (layers).
 * `total` may grow while a call runs (a method that finds more work). Called on the caller's thread,
 * never from inside a parallel region. Return nonzero to cancel: the call then fails with
 * VITQ_ERR_CANCELLED and leaves its outputs as its documentation says for a failure.
 */
typedef int (*vitq_progress_fn)(void *user, const char *stage, int64_t done, int64_t total);

typedef enum vitq_arch {
    VITQ_ARCH_VIT = 1,  /**< ViT / DeiT with a class token, logits from token 0 */
    VITQ_ARCH_DEIT_DISTILLED = 2, /**< DeiT with class and distillation tokens, logits = mean of heads */
    VITQ_ARCH_SWIN = 3  /**< Swin Transformer (v1): shifted-window stages, patch merging, average pool */
} vitq_arch;

typedef enum vitq_layout {
    VITQ_LAYOUT_TIMM = 1, /**< timm key names (patch_embed.proj, blocks.N.attn.qkv, ...) */
    VITQ_LAYOUT_HF = 2,   /**< Hugging Face transformers names (vit.encoder.layer.N..., deit..., swin...) */
    VITQ_LAYOUT_TIMM_PRE09 = 3, /**< timm < 0.9 Swin names: patch merging at the end of a stage, head.weight */
    /** torchvision state dicts (VisionTransformer: conv_proj, encoder.layers.encoder_layer_N, heads.*;
     *  SwinTransformer: features.N...). Since 0.4. */
    VITQ_LAYOUT_TORCHVISION = 4
} vitq_layout;

typedef enum vitq_gelu {
    VITQ_GELU_ERF = 1, /**< exact GELU, x/2 (1 + erf(x/sqrt 2)) (PyTorch nn.GELU, HF "gelu") */
    VITQ_GELU_TANH = 2 /**< tanh approximation (HF "gelu_new", "gelu_pytorch_tanh") */
} vitq_gelu;

/** Hyper-parameters that weight shapes do not reveal, with the source each one was taken from. */
typedef enum vitq_hparam {
    VITQ_HPARAM_NUM_HEADS = 0,
    VITQ_HPARAM_LAYER_NORM_EPS = 1,
    VITQ_HPARAM_GELU = 2,
    VITQ_HPARAM_IMAGE_SIZE = 3,
    VITQ_HPARAM_MEAN = 4,
    VITQ_HPARAM_STD = 5,
    VITQ_HPARAM_COUNT = 6
} vitq_hparam;

/** Where a hyper-parameter came from, in the order vitq consults them (first found wins). */
typedef enum vitq_source {
    VITQ_SOURCE_NONE = 0,         /**< not decided */
    VITQ_SOURCE_OVERRIDE = 1,     /**< vitq_model_options (CLI --num-heads, --mean, ...) */
    VITQ_SOURCE_CONFIG_JSON = 2,  /**< config.json beside the weights (HF or timm hub format) */
    VITQ_SOURCE_PREPROCESSOR = 3, /**< Hugging Face preprocessor_config.json */
    VITQ_SOURCE_METADATA = 4,     /**< the safetensors __metadata__ (vitq.* keys, docs/formats.md) */
    VITQ_SOURCE_ARCH_TABLE = 5,   /**< timm's standard architecture names (e.g. deit_tiny_patch16_224) */
    VITQ_SOURCE_LAYOUT = 6,       /**< fixed by the implementation the layout comes from (timm eps 1e-6) */
    VITQ_SOURCE_SHAPES = 7        /**< derived from tensor shapes (image size from pos_embed) */
} vitq_source;

/** Name of a hyper-parameter ("num_heads", ...); "unknown" for bad values. */
VITQ_API const char *vitq_hparam_name(vitq_hparam hparam);
/** Human-readable name of a source ("config.json", "__metadata__", ...); never NULL. */
VITQ_API const char *vitq_source_string(vitq_source source);

#define VITQ_MAX_CHANNELS 4
#define VITQ_MAX_STAGES 8 /**< most stages of a hierarchical model (Swin has 4) */

/** How a quantized model runs (vitq_model_options.execution). */
typedef enum vitq_execution {
    /** Integer kernels for every linear layer whose input and weight quantizers are uniform grids of
     *  at most 8 bits (uint8 activations x int8 / int4 weights, int32 accumulation); everything else
     *  as VITQ_EXECUTION_SIMULATED. Logits match the simulation up to float rounding of its sums. */
    VITQ_EXECUTION_AUTO = 0,
    /** Fake quantization in float everywhere (the model calibration sees; slower). */
    VITQ_EXECUTION_SIMULATED = 1,
    /** No floating point from pixels to logits (ViT and DeiT): uint8 pixels (vitq_model_forward's
     *  normalised floats are turned back into them), int8/int4 weights, uint8 activations, int32
     *  accumulators and residual stream, dyadic requantization (integer multiplier and shift) between
     *  operators, the integer LayerNorm, softmax and GELU the model was quantized with (it must have
     *  them: vitq_nonlinear), int32 logits scaled per class at the end. A model that is not fully
     *  integer fails to load with VITQ_ERR_UNSUPPORTED naming the part. Since 0.7. */
    VITQ_EXECUTION_INTEGER_ONLY = 2
} vitq_execution;

/** Options for loading a model. Zero / NULL members mean "decide from the checkpoint". */
typedef struct vitq_model_options {
    uint32_t struct_size;             /**< set by vitq_model_options_init() */
    const vitq_allocator *allocator;  /**< NULL: malloc/free. Copied. */
    int32_t num_heads;                /**< override (0: from config) */
    float layer_norm_eps;             /**< override (0: from config); else a normal float in (0, 1) */
    int32_t gelu;                     /**< override, a vitq_gelu (0: from config) */
    int32_t image_size;               /**< override (0: from config or pos_embed); at most 65536 */
    int32_t num_mean;                 /**< number of values in mean[] (0: from config); 1 = all channels */
    float mean[VITQ_MAX_CHANNELS];    /**< override of the normalisation mean, pixels scaled to [0,1] */
    int32_t num_std;                  /**< number of values in std[] (0: from config) */
    float std[VITQ_MAX_CHANNELS];     /**< override of the normalisation std */
    /** Text of a config.json for vitq_model_load_memory() (NULL: none). For vitq_model_load_file()
     *  it replaces the file beside the weights. */
    const char *config_json;
    /** Text of a Hugging Face preprocessor_config.json, as config_json. */
    const char *preprocessor_json;
    int32_t num_threads;              /**< threads used by forward (0: all available, see vitq_model_set_num_threads) */
    /** Schemes a quantized model file may use beyond the built-ins (NULL: built-ins only). A model
     *  loaded with it keeps copies of the scheme tables, not the registry. */
    const vitq_registry *registry;
    /** A vitq_execution: how a quantized model runs (ignored for float models). Since 0.2. */
    int32_t execution;
    /** 1: load weights holding NaN or infinity as they are (0: refuse them, VITQ_ERR_NON_FINITE
     *  naming the tensor and element). Since 0.4. */
    int32_t allow_non_finite;
    /** Progress of the load ("load") and, kept by the model, of its later long calls (as
     *  vitq_model_set_progress). NULL: none. Since 0.5. */
    vitq_progress_fn progress;
    void *progress_user;
} vitq_model_options;

/** Fill `options` with defaults and its struct_size. */
VITQ_API void vitq_model_options_init(vitq_model_options *options);

/**
 * Load a model from a `.safetensors` file, a PyTorch checkpoint written by torch.save (`.pth`, `.pt`,
 * `pytorch_model.bin`, any name: recognised by its first bytes), or a folder holding
 * `model.safetensors` (without it, `pytorch_model.bin`, then `model.pth`). `config.json` and
 * `preprocessor_config.json` beside the weights are read when present. `options` may be NULL.
 * A PyTorch checkpoint's pickle is never executed: anything but a state dict of tensors (and the
 * plain values of a training checkpoint around it) is refused, code with VITQ_ERR_UNSAFE; the
 * legacy format of PyTorch < 1.6 gives VITQ_ERR_UNSUPPORTED.
 * On success *out owns all its memory (the file is not kept open or mapped).
 */
VITQ_API vitq_status vitq_model_load_file(const char *path, const vitq_model_options *options,
                                          vitq_model **out);

/**
 * Load a model from the bytes of a safetensors file or of a torch.save checkpoint (as
 * vitq_model_load_file). The bytes are copied: the caller may free `data` as soon as this returns.
 * `name` (may be NULL) is used in error messages.
 */
VITQ_API vitq_status vitq_model_load_memory(const void *data, size_t size, const char *name,
                                            const vitq_model_options *options, vitq_model **out);

/** Free a model and everything it owns. NULL is a no-op. */
VITQ_API void vitq_model_free(vitq_model *model);

/** What a loaded model is. Fill struct_size with sizeof(vitq_model_info) (vitq_model_info_init). */
typedef struct vitq_model_info {
    uint32_t struct_size;
    int32_t arch;            /**< vitq_arch */
    int32_t layout;          /**< vitq_layout of the checkpoint */
    int32_t image_size;      /**< input height = width */
    int32_t patch_size;
    int32_t in_channels;
    int32_t embed_dim;
    int32_t depth;           /**< number of transformer blocks */
    int32_t num_heads;
    int32_t mlp_dim;         /**< hidden width of the MLP */
    int32_t num_classes;
    int32_t num_tokens;      /**< prefix tokens + patches */
    int32_t num_prefix_tokens; /**< 1 (cls) or 2 (cls, dist) */
    int32_t gelu;            /**< vitq_gelu */
    float layer_norm_eps;
    float mean[VITQ_MAX_CHANNELS]; /**< per input channel, pixels scaled to [0,1] */
    float std[VITQ_MAX_CHANNELS];
    uint64_t num_params;     /**< parameters used by the forward pass */
    double gflops;           /**< multiply-adds x2 of one image's forward pass, in 1e9 */
    /* Stages. ViT/DeiT: one stage. Swin: embed_dim, num_heads, mlp_dim and num_tokens
     * above describe stage 0, depth counts the blocks of all stages, num_prefix_tokens is 0. */
    int32_t num_stages;
    int32_t stage_depth[VITQ_MAX_STAGES];  /**< blocks per stage */
    int32_t stage_dim[VITQ_MAX_STAGES];    /**< token width per stage */
    int32_t stage_heads[VITQ_MAX_STAGES];  /**< attention heads per stage */
    int32_t stage_window[VITQ_MAX_STAGES]; /**< Swin: window side per stage (0 for ViT: global attention) */
    int32_t stage_grid[VITQ_MAX_STAGES];   /**< side of the token grid per stage */
    /** Number of quantization points whose quantizers a quantized model applies (simulated
     *  quantization, see vitq_calibrator_run); 0 for a float model. */
    int32_t num_quantized_points;
    /** Linear layers a quantized model runs with integer kernels (vitq_execution). Since 0.2. */
    int32_t num_integer_layers;
    /** Attention blocks whose Q.K^T and P.V products a quantized model runs with integer kernels
     *  (q, k, v and probabilities on uniform grids of at most 8 bits, scores not quantized). Since 0.2. */
    int32_t num_integer_attentions;
    /** Width of the ViT representation layer (pre_logits: linear + tanh before the classifier, timm
     *  in21k and torchvision representation_size); 0 when the model has none. Since 0.4. */
    int32_t representation_size;
    /** Non-linear operators (LayerNorm, softmax, GELU) a quantized model runs with integer kernels
     *  (vitq_nonlinear; vitq_model_nonlinear_info describes each). Since 0.7. */
    int32_t num_integer_nonlinear;
    /** Bytes of the parameters the forward pass uses, as stored: each quantized weight at its bits,
     *  every other parameter (biases, LayerNorm, embeddings, layers left in float) at 32 bits; the
     *  per-channel scales and zero points not counted. A float model: 4 x num_params. Since 0.8. */
    uint64_t size_bytes;
    /** Average bits per weight parameter of the quantized linear layers (32 for a float model): the
     *  quantity --target-bits of mixed precision aims at. Since 0.8. */
    double average_weight_bits;
} vitq_model_info;

VITQ_API void vitq_model_info_init(vitq_model_info *info);
VITQ_API vitq_status vitq_model_get_info(const vitq_model *model, vitq_model_info *info);

/** Name of class `index` from the model's config: Hugging Face config.json "id2label", timm's
 *  "label_names" (top level or in pretrained_cfg), or a vitq quantized file's metadata
 *  (vitq.class_names, written from the float model's names); *name is NULL when the config names no
 *  classes. VITQ_ERR_OUT_OF_RANGE for an index outside [0, num_classes). Valid while the model lives.
 *  A list that does not name every class exactly once is refused when the model loads
 *  (VITQ_ERR_CONFIG, docs/formats.md "Class names"). Since 0.5. */
VITQ_API vitq_status vitq_model_class_name(const vitq_model *model, int32_t index, const char **name);

/** Where hyper-parameter `hparam` of `model` came from. */
VITQ_API vitq_status vitq_model_hparam_source(const vitq_model *model, vitq_hparam hparam,
                                              vitq_source *source);

/** Progress callback of later long calls on `model`: vitq_model_forward_dataset ("forward", images)
 *  and vitq_model_report with `model` as the quantized model ("report", forward passes). NULL: none.
 *  Several threads using one model share its callback. Since 0.5. */
VITQ_API vitq_status vitq_model_set_progress(vitq_model *model, vitq_progress_fn progress, void *user);

/** Set the number of threads of later forward passes. 0 (the default): all available, which is the
 *  CPUs the process may run on (its affinity mask), at most the environment variable VITQ_NUM_THREADS
 *  when that is a positive integer (read once); larger requests are capped the same way. The threads
 *  are the library's own pool (or OpenMP's in a `make OPENMP=1` build), started at the first parallel
 *  loop; they sleep while idle. A build without VITQ_FEATURE_THREADS always uses 1. */
VITQ_API vitq_status vitq_model_set_num_threads(vitq_model *model, int32_t num_threads);

/**
 * Logits of `n` images. `input` holds n x C x H x W floats, already normalised (NCHW, as PyTorch
 * feeds them); `logits` receives n x num_classes floats. Results do not depend on n, on the batch an
 * image is in, or on the number of threads. Non-finite input gives VITQ_ERR_NON_FINITE.
 */
VITQ_API vitq_status vitq_model_forward(const vitq_model *model, const float *input, size_t n,
                                        float *logits);

/** Pixel layouts of image arrays. */
typedef enum vitq_pixel_layout {
    VITQ_PIXELS_NCHW = 1,
    VITQ_PIXELS_NHWC = 2
} vitq_pixel_layout;

/**
 * Turn n uint8 images (0..255) into the model's input: scale to [0,1], subtract mean, divide by std.
 * `pixels` has the model's image size and channels, in `layout`; `out` receives n x C x H x W floats.
 */
VITQ_API vitq_status vitq_model_preprocess_u8(const vitq_model *model, const uint8_t *pixels, size_t n,
                                              vitq_pixel_layout layout, float *out);

/**
 * Logits of n uint8 images (0..255, the model's size and channels, in `layout`): an integer-only model
 * (VITQ_EXECUTION_INTEGER_ONLY) takes the pixels as they are; any other model as
 * vitq_model_preprocess_u8 followed by vitq_model_forward. Since 0.7.
 */
VITQ_API vitq_status vitq_model_forward_u8(const vitq_model *model, const uint8_t *pixels, size_t n,
                                           vitq_pixel_layout layout, float *logits);

/* ---------------------------------------------------------------------------------------------- */
/* Datasets (images and labels from files or memory)                                               */
/* ---------------------------------------------------------------------------------------------- */

typedef enum vitq_dtype {
    VITQ_DTYPE_U8 = 1,  /**< raw pixels 0..255, preprocessed with the model's mean/std */
    VITQ_DTYPE_F32 = 2  /**< model-ready floats (already normalised), fed as they are */
} vitq_dtype;

/** Shape of a dataset. Fill struct_size with vitq_dataset_info_init(). */
typedef struct vitq_dataset_info {
    uint32_t struct_size;
    uint64_t count;     /**< number of images */
    int32_t height;
    int32_t width;
    int32_t channels;
    int32_t dtype;      /**< vitq_dtype */
    int32_t layout;     /**< vitq_pixel_layout of the stored pixels */
    int32_t has_labels; /**< 1 when labels were loaded */
} vitq_dataset_info;

VITQ_API void vitq_dataset_info_init(vitq_dataset_info *info);

/**
 * Load images from an IDX file (MNIST format, uint8, [N,H,W] or [N,H,W,C]) or a `.npy` file (uint8 or
 * float32; [N,H,W], NCHW or NHWC, told apart by which axis has 1 or 3 channels), either plain or
 * gzip-compressed. `labels_path` (may be NULL) is an IDX or .npy file of N integer labels.
 * `allocator` may be NULL.
 */
VITQ_API vitq_status vitq_dataset_load_file(const char *images_path, const char *labels_path,
                                            const vitq_allocator *allocator, vitq_dataset **out);

/** As vitq_dataset_load_file() from the bytes of the files (copied). `labels` may be NULL. */
VITQ_API vitq_status vitq_dataset_load_memory(const void *images, size_t images_size, const void *labels,
                                              size_t labels_size, const vitq_allocator *allocator,
                                              vitq_dataset **out);

VITQ_API void vitq_dataset_free(vitq_dataset *dataset);
VITQ_API vitq_status vitq_dataset_get_info(const vitq_dataset *dataset, vitq_dataset_info *info);

/** Label of image `index` into *label (VITQ_ERR_BAD_STATE when the dataset has no labels). */
VITQ_API vitq_status vitq_dataset_label(const vitq_dataset *dataset, uint64_t index, int32_t *label);

/**
 * Logits of images [first, first + n) of `dataset`, preprocessed for `model` (uint8 pixels are
 * normalised with the model's mean/std; float32 pixels are fed as they are). `logits` receives
 * n x num_classes floats. The dataset's image size and channels must match the model's, and its
 * labels, when it has any, must be class indices of the model: VITQ_ERR_OUT_OF_RANGE names the first
 * image of the range whose label is num_classes or more (before any forward pass).
 */
VITQ_API vitq_status vitq_model_forward_dataset(const vitq_model *model, const vitq_dataset *dataset,
                                                uint64_t first, size_t n, float *logits);


/* ---------------------------------------------------------------------------------------------- */
/* Quantization: points, tensor views, schemes                                                     */
/* ---------------------------------------------------------------------------------------------- */

/*
 * A quantization point is one tensor of the network that a quantizer may replace by its quantized
 * value: the weight and the input of every linear layer, Q, K, V, the attention probabilities, and
 * the inputs of LayerNorm, softmax and GELU. Names are stable and use timm's module names for every
 * checkpoint layout, e.g. "blocks.3.attn.qkv.weight", "blocks.3.attn.softmax.out",
 * "layers.1.downsample.reduction.input" (docs/quantization.md lists them all).
 */
typedef enum vitq_point_kind {
    VITQ_POINT_WEIGHT = 1,    /**< a weight: quantized once, stored as integers in a saved model */
    VITQ_POINT_ACTIVATION = 2 /**< an activation: calibrated on data, quantized at every forward */
} vitq_point_kind;

/** What a point's tensor is (papers treat these differently). */
typedef enum vitq_point_role {
    VITQ_ROLE_LINEAR_WEIGHT = 1,  /**< [out][in] weight of a linear layer (patch embedding included) */
    VITQ_ROLE_IMAGE = 2,          /**< normalised image patches entering the patch embedding */
    VITQ_ROLE_POST_LAYERNORM = 3, /**< a LayerNorm output feeding a linear layer (qkv, fc1, merge, head) */
    VITQ_ROLE_LINEAR_INPUT = 4,   /**< other linear inputs: attention output into proj, pooled tokens */
    VITQ_ROLE_POST_GELU = 5,      /**< the GELU output feeding fc2 */
    VITQ_ROLE_QUERY = 6,          /**< Q, left operand of Q.K^T */
    VITQ_ROLE_KEY = 7,            /**< K, right operand of Q.K^T */
    VITQ_ROLE_VALUE = 8,          /**< V, right operand of P.V */
    VITQ_ROLE_POST_SOFTMAX = 9,   /**< attention probabilities P, left operand of P.V */
    VITQ_ROLE_LAYERNORM_INPUT = 10, /**< residual stream entering a LayerNorm (integer LayerNorm) */
    VITQ_ROLE_SOFTMAX_INPUT = 11, /**< attention scores entering the softmax (integer softmax) */
    VITQ_ROLE_GELU_INPUT = 12     /**< fc1 output entering GELU (integer GELU) */
} vitq_point_role;

/** Which elements share one scale (and zero point). */
typedef enum vitq_granularity {
    VITQ_GRAN_TENSOR = 1,  /**< one set of parameters for the whole tensor */
    VITQ_GRAN_CHANNEL = 2, /**< one per channel: output row of a weight, feature of an activation */
    VITQ_GRAN_HEAD = 3     /**< one per attention head (channels of a head are consecutive) */
} vitq_granularity;

/**
 * A float tensor seen as `outer` slices of `channels` channels of `inner` consecutive elements:
 * element (o, c, i) is data[o * outer_stride + c * inner + i]. A weight [out][in] is
 * {outer 1, channels out, inner in}; an activation [tokens][features] is {outer tokens, channels
 * features, inner 1}; attention probabilities [sequences][heads][tokens][tokens] are {outer sequences,
 * channels heads, inner tokens * tokens}. Q, K and V are views into the fused qkv rows, hence the
 * stride.
 */
typedef struct vitq_tensor_view {
    uint32_t struct_size; /**< sizeof(vitq_tensor_view) */
    float *data;
    int64_t outer;
    int64_t channels;
    int64_t inner;
    int64_t outer_stride; /**< elements from one slice to the next, at least channels * inner */
} vitq_tensor_view;

/** Error metrics between a reference and an approximation (calibration, reports, schemes). */
typedef enum vitq_metric {
    VITQ_METRIC_MSE = 1,    /**< mean of (a - b)^2 */
    VITQ_METRIC_COSINE = 2, /**< a.b / (|a| |b|); 1 when both are zero */
    VITQ_METRIC_SQNR = 3    /**< 10 log10(sum a^2 / sum (a - b)^2) in dB; +inf when equal */
} vitq_metric;

/** `metric` of `approx` against `reference`, n floats each, into *out (accumulated in double). */
VITQ_API vitq_status vitq_metric_compute(vitq_metric metric, const float *reference, const float *approx, size_t n,
                                         double *out);

/** One numeric option a scheme accepts (beside the generic ones: bits, granularity, symmetric). */
typedef struct vitq_scheme_option {
    const char *name;     /**< key, e.g. "percentile" */
    const char *help;     /**< one line */
    double min_value;     /**< values outside [min_value, max_value] give VITQ_ERR_OUT_OF_RANGE */
    double max_value;
    double default_value;
    int32_t is_integer;   /**< 1: only whole numbers are accepted */
} vitq_scheme_option;

/** How one quantizer instance is configured; handed to vitq_scheme.create. */
typedef struct vitq_point_config {
    uint32_t struct_size;
    const char *name;        /**< point name, or "quantizer" for a stand-alone vitq_quantizer */
    int32_t kind;            /**< vitq_point_kind */
    int32_t role;            /**< vitq_point_role (0 for a stand-alone quantizer) */
    int32_t bits;            /**< 2..8 */
    int32_t granularity;     /**< vitq_granularity */
    int32_t symmetric;       /**< 1: signed codes in [-2^(bits-1), 2^(bits-1) - 1], zero point 0;
                                  0: unsigned codes in [0, 2^bits - 1] with a zero point */
    int64_t channels;        /**< channels of every view this quantizer will see */
    int64_t groups;          /**< parameter groups: 1, channels, or heads */
    int64_t channels_per_group; /**< channel c belongs to group c / channels_per_group */
    const double *options;   /**< values of the scheme's options, in the order of vitq_scheme.options */
    uint64_t seed;           /**< for schemes that draw random numbers (same seed, same result) */
    /** The `user` pointer of the scheme table as it was registered (vitq_registry_add): the host
     *  application's context for the plugin, so that a scheme needs no globals. Since 0.3. */
    void *scheme_user;
} vitq_point_config;

/** Services the library offers to a scheme (so that schemes outside vitq need no internals). */
typedef struct vitq_scheme_host {
    uint32_t struct_size;
    /** Memory from the allocator of the calibrator or quantizer (64-byte aligned; NULL on failure). */
    void *(*alloc)(const struct vitq_scheme_host *host, size_t size);
    void (*free)(const struct vitq_scheme_host *host, void *ptr);
    /** Record `message` as the detail of vitq_last_error() and return `status`. */
    vitq_status (*fail)(const struct vitq_scheme_host *host, vitq_status status, const char *message);
    void *impl; /**< the library's own, do not touch */
    /** vitq_metric_compute for schemes that search parameters (MSE, cosine, SQNR; metrics that need
     *  gradients, Hessian-guided and blockwise, join this enum with the methods that use them). */
    double (*metric)(vitq_metric metric, const float *reference, const float *approx, size_t n);
} vitq_scheme_host;

#define VITQ_SCHEME_ABI_VERSION 1

/**
 * A quantization scheme: what a quantizer of one point does. Built-in schemes ("minmax",
 * "percentile", "omse") use this same table; a host application adds its own with
 * vitq_registry_add(). The library calls, for each point:
 *   create -> observe(pass 0, every calibration batch) ... observe(pass num_passes - 1, ...) ->
 *   finalize -> fake_quant / quantize / dequantize (any number of times) -> destroy
 * or, for a saved model: create -> set_param (each stored array) -> fake_quant ... -> destroy.
 * Views handed to observe are only valid during the call. Quantized codes of a symmetric point are
 * signed, of an asymmetric one unsigned, and always fit in `bits` bits (a saved model stores them so).
 * Required: create, destroy, observe, finalize, fake_quant, quantize, dequantize, param_count,
 * get_param, set_param. Every function returns VITQ_OK or an error with host->fail().
 */
typedef struct vitq_scheme {
    uint32_t struct_size;     /**< sizeof(vitq_scheme) */
    uint32_t abi_version;     /**< VITQ_SCHEME_ABI_VERSION */
    const char *name;         /**< registry key: letters, digits, '-' and '_' */
    const char *description;  /**< one line */
    int32_t num_passes;       /**< observation passes over the calibration data (1 or 2) */
    int32_t min_bits, max_bits; /**< bit widths it implements, within 2..8 */
    int32_t num_options;
    const vitq_scheme_option *options; /**< num_options entries (may be NULL when 0) */
    vitq_status (*create)(const vitq_point_config *config, const vitq_scheme_host *host, void **state);
    void (*destroy)(void *state);
    /** Statistics of one batch of the point's tensor in pass `pass` (0-based). */
    vitq_status (*observe)(void *state, int32_t pass, const vitq_tensor_view *x);
    /** Choose the parameters from what was observed. */
    vitq_status (*finalize)(void *state);
    /** Replace x by its quantized value (quantize then dequantize), in place. */
    vitq_status (*fake_quant)(void *state, const vitq_tensor_view *x);
    /** Integer codes of x, densely in (outer, channel, inner) order. */
    vitq_status (*quantize)(void *state, const vitq_tensor_view *x, int32_t *codes);
    /** Values of dense codes into the view (dequantize(quantize(x)) equals fake_quant(x) bit for bit). */
    vitq_status (*dequantize)(void *state, const int32_t *codes, const vitq_tensor_view *out);
    /** Parameters, as named float arrays (saved as "<point>.<name>" tensors): count, then each. */
    int32_t (*param_count)(void *state);
    vitq_status (*get_param)(void *state, int32_t index, const char **name, const float **values, int64_t *count);
    vitq_status (*set_param)(void *state, const char *name, const float *values, int64_t count);
    /** The registering application's context, handed to create() as config->scheme_user. */
    void *user;
    /** Bytes of one entry of `options` (sizeof(vitq_scheme_option) of the header the scheme was built
     *  with); 0 or a table from before 0.3: the first release's size. Lets vitq_scheme_option grow.
     *  Since 0.3. */
    uint32_t option_size;
    /** What the saved parameters mean, for this scheme name: raise it when a change gives the same
     *  parameter names another meaning. Quantized files record it per point ("revision"; absent: 0)
     *  and a file of another revision is refused with VITQ_ERR_UNSUPPORTED instead of being read
     *  under the new meaning. 0 for most schemes. Since 0.6. */
    uint32_t revision;
} vitq_scheme;

/* Registry ------------------------------------------------------------------------------------- */

/** A registry holding the built-in schemes; add your own with vitq_registry_add(). */
VITQ_API vitq_status vitq_registry_create(const vitq_allocator *allocator, vitq_registry **out);
/**
 * Add a scheme. The table is copied (the strings and option array it points to must outlive the
 * registry). VITQ_ERR_ABI_MISMATCH for an unknown struct_size or abi_version, VITQ_ERR_INVALID_ARGUMENT
 * for a missing function, bad name or bit range, VITQ_ERR_CONFIG when the name is taken.
 */
VITQ_API vitq_status vitq_registry_add(vitq_registry *registry, const vitq_scheme *scheme);
VITQ_API void vitq_registry_free(vitq_registry *registry);
/** Number of schemes of `registry` (NULL: the built-ins). */
VITQ_API int32_t vitq_registry_count(const vitq_registry *registry);
/** Scheme `index` (0-based) of `registry` (NULL: the built-ins); NULL when out of range. */
VITQ_API const vitq_scheme *vitq_registry_get(const vitq_registry *registry, int32_t index);

/* PTQ methods ---------------------------------------------------------------------------------- */

/**
 * A built-in PTQ method ("ptq4vit", "apq-vit", "repq-vit", "noisyquant", ...): a recipe that chooses
 * every point's scheme and refines the calibration with the whole network in view. Name it in
 * vitq_calibrator_options.scheme; its options go to vitq_calibrator_set_option(). Strings and options
 * are static: they stay valid for the life of the program.
 */
typedef struct vitq_method_info {
    uint32_t struct_size;     /**< set by vitq_method_info_init() */
    const char *name;         /**< what vitq_calibrator_options.scheme takes */
    const char *description;  /**< one line */
    int32_t num_options;      /**< options of vitq_calibrator_set_option() */
    /** The options: option i is at (const char *)options + i * option_size. The size is this
     *  library's sizeof(vitq_scheme_option), which a later version may grow: step by it, not by
     *  your own sizeof. NULL when num_options is 0. */
    const vitq_scheme_option *options;
    uint32_t option_size;
} vitq_method_info;

VITQ_API void vitq_method_info_init(vitq_method_info *info);
/** Number of built-in PTQ methods. */
VITQ_API int32_t vitq_method_count(void);
/** Method `index` (0 .. vitq_method_count() - 1) into *info. VITQ_ERR_INVALID_ARGUMENT for a NULL
 *  info or an index out of range, VITQ_ERR_ABI_MISMATCH for a bad info->struct_size. */
VITQ_API vitq_status vitq_method_get_info(int32_t index, vitq_method_info *info);

/* Stand-alone quantizer ------------------------------------------------------------------------- */

/**
 * A quantizer of scheme `scheme` from `registry` (NULL: built-ins) for tensors of any shape; the
 * first observed view fixes the channel count. Options (vitq_quantizer_set): "bits" (2..8, 8),
 * "granularity" ("tensor", "channel", "head"), "heads" (for granularity head), "symmetric" (0/1),
 * "kind" ("weight", "activation"), "seed", and the scheme's own options.
 */
VITQ_API vitq_status vitq_quantizer_create(const vitq_registry *registry, const char *scheme,
                                           const vitq_allocator *allocator, vitq_quantizer **out);
VITQ_API void vitq_quantizer_free(vitq_quantizer *quantizer);
/** Set option `key` from text ("4", "channel", "99.9"). Unknown keys and bad values are errors. */
VITQ_API vitq_status vitq_quantizer_set(vitq_quantizer *quantizer, const char *key, const char *value);
VITQ_API vitq_status vitq_quantizer_set_int(vitq_quantizer *quantizer, const char *key, int64_t value);
VITQ_API vitq_status vitq_quantizer_set_float(vitq_quantizer *quantizer, const char *key, double value);
/** Observation passes the scheme needs: observe every batch in pass 0, then again in pass 1, ... */
VITQ_API int32_t vitq_quantizer_num_passes(const vitq_quantizer *quantizer);
VITQ_API vitq_status vitq_quantizer_observe(vitq_quantizer *quantizer, int32_t pass, const vitq_tensor_view *x);
VITQ_API vitq_status vitq_quantizer_finalize(vitq_quantizer *quantizer);
VITQ_API vitq_status vitq_quantizer_fake_quant(vitq_quantizer *quantizer, const vitq_tensor_view *x);
VITQ_API vitq_status vitq_quantizer_quantize(vitq_quantizer *quantizer, const vitq_tensor_view *x, int32_t *codes);
VITQ_API vitq_status vitq_quantizer_dequantize(vitq_quantizer *quantizer, const int32_t *codes,
                                               const vitq_tensor_view *out);
/** Parameter array `name` ("scale", "zero_point", ...) of a finalized quantizer: *values stays valid
 *  until the quantizer is freed. VITQ_ERR_UNKNOWN_NAME when the scheme has no such parameter. */
VITQ_API vitq_status vitq_quantizer_param(const vitq_quantizer *quantizer, const char *name, const float **values,
                                          int64_t *count);

/* Calibrator -------------------------------------------------------------------------------------- */

/**
 * How the non-linear operators (every LayerNorm, softmax and GELU) of a quantized model run
 * (vitq_calibrator_options.nonlinear, and the key "nonlinear" of vitq_calibrator_set on a
 * LayerNorm, softmax or GELU input point). An integer method puts the operator's input on an integer
 * grid chosen in calibration (16-bit, or 8-bit with per-channel power-of-two factors for FQ-ViT's
 * LayerNorm) and computes the operator with integers only, as the integer-only papers do;
 * docs/quantization.md gives the kernels and their error on real activations. Since 0.7.
 */
typedef enum vitq_nonlinear {
    VITQ_NONLINEAR_FLOAT = 0, /**< in float, as the FP32 model (the default) */
    VITQ_NONLINEAR_IBERT = 1, /**< I-BERT: i-exp softmax, i-GELU (erf polynomial), Newton-sqrt LayerNorm */
    /** FQ-ViT: Log-Int-Softmax (a 4-bit log2 attention map, which replaces the probabilities'
     *  quantizer), Power-of-Two-Factor LayerNorm; FQ-ViT has no integer GELU: I-BERT's i-GELU */
    VITQ_NONLINEAR_FQVIT = 2,
    VITQ_NONLINEAR_IVIT = 3,  /**< I-ViT: Shiftmax, ShiftGELU, I-LayerNorm */
    /** Per operator, the method whose substitution alone costs the network's output least SQNR on
     *  the calibration images (mixed non-linear quantization, arXiv 2407.18437); the measurements
     *  are saved in the quantized file (vitq_model_nonlinear_info) */
    VITQ_NONLINEAR_MIXED = 4
} vitq_nonlinear;

/** Which tensors a calibration quantizes beyond the transformer blocks (vitq_calibrator_options.setting). */
typedef enum vitq_setting {
    /** The patch embedding and the classifier(s), weights and inputs, at edge_bits; the image left in
     *  float: what users should get (first and last layers are cheap and sensitive). */
    VITQ_SETTING_DEFAULT = 0,
    /** What the method's paper quantized in its experiments, so that results compare with its tables:
     *  every linear layer, the patch embedding's and classifier's weights included, at weight_bits,
     *  their inputs at activation_bits (edge_bits ignored); the image at 8 bits for repq-vit (its
     *  code quantizes the patch embedding's input at 8 bits), in float for ptq4vit, apq-vit,
     *  noisyquant and plain schemes (PTQ4ViT's code, on which the others build, leaves it in float).
     *  docs/quantization.md lists what each setting quantizes. Since 0.5. */
    VITQ_SETTING_PAPER = 1
} vitq_setting;

/** The loss block reconstruction minimises on each block's output (vitq_calibrator_options.recon_loss).
 *  Since 0.10. */
typedef enum vitq_recon_loss {
    /** Squared error summed over the block output's features, averaged over images */
    VITQ_RECON_LOSS_MSE = 0,
    /** The same, each element weighted by the float network's diagonal Fisher information at the block
     *  output (the squared gradient of its cross-entropy against its own top-1 class; BRECQ), the
     *  weights of a block scaled to mean 1 */
    VITQ_RECON_LOSS_FISHER = 1
} vitq_recon_loss;

typedef struct vitq_calibrator_options {
    uint32_t struct_size;            /**< set by vitq_calibrator_options_init() */
    const vitq_allocator *allocator; /**< NULL: the model's */
    const vitq_registry *registry;   /**< NULL: built-in schemes only */
    /** Scheme of every point unless set otherwise ("minmax"), or a PTQ method ("repq-vit",
     *  "noisyquant", ...; vitq_method_get_info lists them) that chooses each point's scheme and
     *  refines the calibration. */
    const char *scheme;
    int32_t weight_bits;             /**< 8 */
    int32_t activation_bits;         /**< 8 */
    /** Bits of the patch embedding and of the classifier (weights and inputs): 8, as most papers
     *  keep the first and last layers; 0: the same as the others. */
    int32_t edge_bits;
    uint64_t seed;                   /**< for schemes that draw random numbers */
    vitq_progress_fn progress;       /**< may be NULL */
    void *progress_user;
    int32_t setting;                 /**< a vitq_setting (VITQ_SETTING_DEFAULT). Since 0.5. */
    /** How LayerNorm, softmax and GELU run: a vitq_nonlinear (VITQ_NONLINEAR_FLOAT). Per point, the
     *  key "nonlinear" of vitq_calibrator_set overrides it. Since 0.7. */
    int32_t nonlinear;
    /** Greedy mixed precision (MPTQ-ViT's Greedy MP, over any scheme or method), since 0.8: each linear
     *  layer of the blocks (Swin: and each patch merging) is a unit whose weight and input share one
     *  width from candidate_bits (the attention's Q, K, V and probabilities follow the block's qkv
     *  unit); units start at the widest candidate and are lowered one step at a time, the one losing
     *  least output KL divergence per byte saved on the calibration images first, until the average
     *  bits per quantized weight parameter is at most target_bits (0: no such target) and
     *  vitq_model_info.size_bytes at most target_bytes (0: no such target). The patch embedding and
     *  the classifier keep edge_bits. Deterministic for a seed and calibration set. */
    double target_bits;
    uint64_t target_bytes;
    /** Widths mixed precision may give a unit: bit b set for width b, 2..8 (0: 4, 5, 6 and 8). */
    uint32_t candidate_bits;
    /** Block reconstruction (1; 0: off), since 0.9: after the scheme's or method's calibration, each
     *  transformer block in order learns the rounding of its weights (AdaRound) and, with
     *  recon_learn_steps, the steps of its uniform activation quantizers (LSQ), so that the quantized
     *  block on the quantized network's input reproduces the float block's output on the float
     *  network's input (BRECQ), activation quantization randomly dropped (QDrop). A block whose
     *  calibration loss would rise keeps its starting quantization. The result is an ordinary quantized
     *  file. ViT, DeiT and (since 0.10) Swin; not with mixed precision. docs/training.md. */
    int32_t reconstruct;
    int32_t recon_iters;       /**< Adam steps per block (0: 100) */
    int32_t recon_batch;       /**< images per step (0: 32, at most the calibration images) */
    double recon_drop;         /**< QDrop: probability an activation stays float in training (0.5) */
    int32_t recon_learn_steps; /**< 1: learn activation steps too (the default), 0: rounding only */
    /** Reconstruction's loss: a vitq_recon_loss (VITQ_RECON_LOSS_MSE). Since 0.10. */
    int32_t recon_loss;
    /** Augmented views (random resized crops and horizontal flips, made in the library) that block
     *  reconstruction adds per calibration image, so that a few images give more training data (0:
     *  none). Since 0.10. */
    int32_t recon_augment;
} vitq_calibrator_options;

VITQ_API void vitq_calibrator_options_init(vitq_calibrator_options *options);

/**
 * A calibrator for `model` (a float model, which must outlive it). Default configuration: weights
 * per channel and symmetric, activations per tensor and asymmetric, with the options' bits; the
 * inputs of LayerNorm, softmax and GELU, and the image entering the patch embedding (8-bit pixels
 * already), are left in float (bits 0) until configured.
 */
VITQ_API vitq_status vitq_calibrator_create(const vitq_model *model, const vitq_calibrator_options *options,
                                            vitq_calibrator **out);
VITQ_API void vitq_calibrator_free(vitq_calibrator *calibrator);

/** Description of one quantization point. Strings stay valid while the handle lives. */
typedef struct vitq_point_info {
    uint32_t struct_size;  /**< set by vitq_point_info_init() */
    const char *name;
    int32_t kind;          /**< vitq_point_kind */
    int32_t role;          /**< vitq_point_role */
    int32_t bits;          /**< 0: left in float */
    int32_t granularity;   /**< vitq_granularity */
    int32_t symmetric;
    const char *scheme;
    int64_t channels;      /**< output rows of a weight, features of an activation, heads of P */
    int64_t heads;         /**< attention heads the channels divide into (0: not per-head capable) */
    float observed_min;    /**< range seen in calibration (0, 0 before or when not quantized) */
    float observed_max;
} vitq_point_info;

VITQ_API void vitq_point_info_init(vitq_point_info *info);
VITQ_API int32_t vitq_calibrator_num_points(const vitq_calibrator *calibrator);
VITQ_API vitq_status vitq_calibrator_point_info(const vitq_calibrator *calibrator, int32_t index,
                                                vitq_point_info *info);

/**
 * Set `key` to `value` on every point whose name matches `pattern` ('*' matches any run of
 * characters, '?' one). Keys: "bits" (0 = float, or 2..8), "granularity", "symmetric", "scheme",
 * "noisy" (1: NoisyQuant's fixed noisy bias before the quantizer, searched per layer; inputs of
 * linear layers only), "nonlinear" (float, ibert, fqvit, ivit or mixed, or 0..4: the integer operator
 * reading a LayerNorm, softmax or GELU input point; since 0.7), and options of the points' scheme. VITQ_ERR_UNKNOWN_NAME when nothing
 * matches or the key is unknown; VITQ_ERR_OUT_OF_RANGE for a value the key or scheme does not
 * accept. Settings apply in call order; `scheme` resets that point's scheme options to their defaults.
 * A call is all or nothing: when any matching point refuses the value, no point has changed.
 */
VITQ_API vitq_status vitq_calibrator_set(vitq_calibrator *calibrator, const char *pattern, const char *key,
                                         const char *value);

/**
 * Set an option of the calibrator's PTQ method (options.scheme naming a method such as "repq-vit",
 * docs/quantization.md lists them and their options), e.g. ("reparam", "0"). Options that choose
 * quantizers (repq-vit's post_gelu) configure again every point not changed by vitq_calibrator_set,
 * so set method options first. VITQ_ERR_UNKNOWN_NAME for an unknown key or when no method runs,
 * VITQ_ERR_OUT_OF_RANGE for a bad value.
 */
VITQ_API vitq_status vitq_calibrator_set_option(vitq_calibrator *calibrator, const char *key, const char *value);

/** Add n calibration images (normalised NCHW floats, as vitq_model_forward takes); copied. n = 0 adds
 *  nothing; a count that cannot fit in memory gives VITQ_ERR_OUT_OF_MEMORY and adds nothing. */
VITQ_API vitq_status vitq_calibrator_feed(vitq_calibrator *calibrator, const float *images, size_t n);
/** Add images [first, first + n) of `dataset`, preprocessed for the model. */
VITQ_API vitq_status vitq_calibrator_feed_dataset(vitq_calibrator *calibrator, const vitq_dataset *dataset,
                                                  uint64_t first, size_t n);

/**
 * Calibrate every point on the fed images and return a quantized model: a vitq_model that runs
 * through vitq_model_forward() as a loaded quantized file does with VITQ_EXECUTION_AUTO (linear
 * layers and attention products whose quantizers allow it on the integer kernels, the rest as
 * simulated quantization: each point's tensor replaced by its quantized value), and saves with
 * vitq_model_save(). Free it with vitq_model_free(); it does not depend on the calibrator or on the
 * float model afterwards.
 */
VITQ_API vitq_status vitq_calibrator_run(vitq_calibrator *calibrator, vitq_model **quantized);

/** Cost of the last vitq_calibrator_run(). */
typedef struct vitq_calibrator_stats {
    uint32_t struct_size;
    uint64_t images;          /**< calibration images */
    double seconds;           /**< wall time of the run */
    uint64_t peak_bytes;      /**< most memory the calibrator held at once (images, statistics, workspaces) */
} vitq_calibrator_stats;

VITQ_API void vitq_calibrator_stats_init(vitq_calibrator_stats *stats);
VITQ_API vitq_status vitq_calibrator_get_stats(const vitq_calibrator *calibrator, vitq_calibrator_stats *stats);

/* Quantization-aware training (since 0.11) ----------------------------------------------------- */

/**
 * A trainer: quantization-aware training (VVTQ, docs/training.md "Quantization-aware training") that
 * starts where a configured calibrator would stop. vitq_trainer_run calibrates as vitq_calibrator_run
 * does (scheme or method, bits, vitq_calibrator_set, the fed calibration images) and then trains every
 * transformer block on the training images before the weights are encoded: latent weights fake-quantized
 * with learned steps (LSQ with VVTQ's magnitude-aware gradient scale), the steps of the uniform activation
 * quantizers, biases and LayerNorm parameters, by knowledge distillation from a float teacher on several
 * random resized crops and flips of each image, with VVTQ's oscillation-aware bin regulariser (off for the
 * first quarter of the run, then a cosine ramp). AdamW, linear warm-up, cosine decay. The patch embedding
 * and the classifier keep the calibrator's quantization. Weights must be on uniform grids (every built-in
 * weight scheme; zero points stay). ViT, DeiT and Swin (its patch merging, like the classifier, keeps its quantization and
 * carries the gradient). The result is an ordinary quantized model.
 * Deterministic for a seed (the calibrator's) and thread count.
 */
typedef struct vitq_trainer vitq_trainer;

typedef struct vitq_trainer_options {
    uint32_t struct_size;   /**< set by vitq_trainer_options_init() */
    int32_t epochs;         /**< passes over the training images (4) */
    int32_t batch;          /**< images per optimizer step (64) */
    int32_t crops;          /**< random resized crops per image and step (4; 0: the images unaugmented) */
    int32_t micro_batch;    /**< views per forward and backward, bounds the memory (32) */
    double learning_rate;   /**< AdamW's rate (5e-4) */
    double weight_decay;    /**< on the latent weights (0.05) */
    double warmup_epochs;   /**< linear warm-up (0) */
    double regularizer;     /**< the bin regulariser's final weight (0.01; 0: off) */
    double temperature;     /**< of the distillation (1) */
    const char *log_path;   /**< a CSV line per optimizer step (NULL: none) */
    /** Progress and cancel (NULL: the calibrator's callback): a stage per optimizer step with its loss,
     *  agreement with the teacher, views per second and time left; a nonzero return cancels. */
    vitq_progress_fn progress;
    void *progress_user;
    /** A checkpoint written (atomically, replacing the last) at the end of every epoch (NULL: none). */
    const char *checkpoint_path;
    /** A checkpoint of the same run (same calibrator, images, options and seed) to go on from: the run
     *  continues at the epoch after it, with the same result as if it had never stopped (NULL: start). */
    const char *resume_path;
    /** Since 0.12: the seed of the image order and the crops of a trainer made by vitq_trainer_create_from
     *  (0); a calibrator's trainer uses the calibrator's seed and ignores this one. */
    uint64_t seed;
} vitq_trainer_options;

VITQ_API void vitq_trainer_options_init(vitq_trainer_options *options);

/** A trainer over `calibrator` (configured and fed; it must outlive the trainer) with `teacher` (a float
 *  model with the same input and classes; NULL: the calibrator's float model). */
VITQ_API vitq_status vitq_trainer_create(vitq_calibrator *calibrator, const vitq_model *teacher,
                                         const vitq_trainer_options *options, vitq_trainer **out);
/** Since 0.12: a trainer that starts from `start`, a quantized model (a saved file loaded with
 *  vitq_model_load_file, or a calibrator's or trainer's result), instead of calibrating: its quantizers, their
 *  steps and zero points, and its weights (dequantized from their codes, so every code is where the start had
 *  it) are where training begins; vitq_trainer_run calibrates nothing. `teacher` is required (a quantized
 *  model keeps no float weights) and must take the same input and give the same classes. `start` must outlive
 *  the trainer and is not changed; its allocator serves the trainer. Refused: a float `start`, and a start with
 *  integer non-linear operators (their measurements would not hold for the trained network; a calibrator's
 *  trainer with vitq_calibrator_options.nonlinear measures them after training). */
VITQ_API vitq_status vitq_trainer_create_from(const vitq_model *start, const vitq_model *teacher,
                                              const vitq_trainer_options *options, vitq_trainer **out);
VITQ_API void vitq_trainer_free(vitq_trainer *trainer);

/** Calibrate (not for a trainer made by vitq_trainer_create_from), train on images [first, first + n) of
 *  `train` (labels are not used: the teacher labels),
 *  and return the result in *quantized (NULL on failure), which the caller frees with vitq_model_free.
 *  The dataset is read, not kept. */
VITQ_API vitq_status vitq_trainer_run(vitq_trainer *trainer, const vitq_dataset *train, uint64_t first, size_t n,
                                      vitq_model **quantized);

/** What epoch `epoch` (0-based) of the last run did. */
typedef struct vitq_trainer_epoch {
    uint32_t struct_size;  /**< set by vitq_trainer_epoch_init() */
    double loss;           /**< mean distillation loss */
    double agreement;      /**< fraction of views whose top-1 class is the teacher's */
    double regularizer;    /**< the bin regulariser's value (times its weight) at the epoch's end */
    double flips;          /**< weight codes changed per optimizer step, over all layers */
    double oscillations;   /**< of those, codes back to where they were two steps before (a, b, a) */
    double seconds;
} vitq_trainer_epoch;

VITQ_API void vitq_trainer_epoch_init(vitq_trainer_epoch *epoch);
VITQ_API vitq_status vitq_trainer_epoch_stats(const vitq_trainer *trainer, int32_t epoch, vitq_trainer_epoch *out);

/* Quantized models ----------------------------------------------------------------------------- */

/** Point `index` of a quantized model (0 .. info.num_quantized_points - 1). */
VITQ_API vitq_status vitq_model_point_info(const vitq_model *model, int32_t index, vitq_point_info *info);

/** One integer non-linear operator of a quantized model (vitq_nonlinear). Since 0.7. */
typedef struct vitq_nonlinear_info {
    uint32_t struct_size; /**< set by vitq_nonlinear_info_init() */
    const char *point;    /**< the point the operator reads ("blocks.0.norm1.input"); valid while the model lives */
    const char *op;       /**< "layernorm", "softmax" or "gelu" */
    int32_t method;       /**< the kernel that runs: VITQ_NONLINEAR_IBERT, _FQVIT or _IVIT */
    int32_t input_bits;   /**< of its input grid: 16, or 8 for FQ-ViT's LayerNorm */
    double input_scale;   /**< step of its input grid (FQ-ViT's LayerNorm: of the channels with factor 1) */
    /** The mixed selection's measurement: dB of SQNR of the logits lost, against the float model on
     *  the calibration images, when only this operator runs I-BERT [0], FQ-ViT [1] or I-ViT [2]
     *  (NaN: not a candidate of this operator, or no operator of the calibration was mixed) */
    double dsqnr[3];
} vitq_nonlinear_info;

VITQ_API void vitq_nonlinear_info_init(vitq_nonlinear_info *info);
/** Operator `index` of a quantized model (0 .. info.num_integer_nonlinear - 1), in forward order. */
VITQ_API vitq_status vitq_model_nonlinear_info(const vitq_model *model, int32_t index, vitq_nonlinear_info *info);

/**
 * Save a quantized model as safetensors: integer weights (I8, or U8 with two 4-bit or four 2-bit
 * codes per byte), every quantizer's parameters as F32 tensors, float tensors the quantization
 * left alone, and __metadata__ (docs/formats.md). vitq_model_load_file() of the result gives a
 * model whose outputs are bit-identical. A float model gives VITQ_ERR_BAD_STATE. The file is written
 * beside `path` under a temporary name and renamed over it: after an error (VITQ_ERR_IO: a full disk,
 * a folder that cannot be written) or a kill, `path` holds its previous content, never a part.
 */
VITQ_API vitq_status vitq_model_save(const vitq_model *model, const char *path);
/** As vitq_model_save() into `buffer` of `capacity` bytes; *size receives the bytes needed (call
 *  with buffer NULL to ask). VITQ_ERR_BUFFER_TOO_SMALL when it does not fit. */
VITQ_API vitq_status vitq_model_save_memory(const vitq_model *model, void *buffer, size_t capacity, size_t *size);

/* ONNX export ----------------------------------------------------------------------------------- */

/** Options of vitq_model_export_onnx. Since 0.9. */
typedef struct vitq_onnx_options {
    uint32_t struct_size; /**< set by vitq_onnx_options_init() */
    /** ONNX opset, 13 to 17 (0: 17). 17 writes each LayerNorm as one LayerNormalization node; 13 to 16
     *  decompose it into ReduceMean, Sub, Mul, Add, Sqrt, Div. Another value: VITQ_ERR_OUT_OF_RANGE. */
    int32_t opset;
} vitq_onnx_options;

VITQ_API void vitq_onnx_options_init(vitq_onnx_options *options);

/**
 * Write a ViT or DeiT model as an ONNX model (docs/onnx.md): the forward pass vitq_model_forward runs,
 * taking the same input (normalised float32 NCHW images, batch size free) and giving the logits. A
 * quantized model becomes a QDQ graph: each quantized weight an INT8 (symmetric) or UINT8 initializer
 * of its codes with per-output-channel scales and zero points behind a DequantizeLinear, each
 * quantized activation a QuantizeLinear / DequantizeLinear pair with its scale and zero point (per
 * tensor, or per channel along the point's channels); what ONNX Runtime computes from it equals
 * vitq's simulated execution (VITQ_EXECUTION_SIMULATED) up to float rounding. A float model gives a
 * plain float graph. Refused with VITQ_ERR_UNSUPPORTED, naming the point and its scheme: quantizers
 * that are not uniform grids (log2, log-sqrt2, twin-uniform, mpq, a registry's own schemes) and
 * integer non-linear operators (vitq_nonlinear); Swin models. Written beside `path` and renamed over
 * it, as vitq_model_save. `options` may be NULL. Since 0.9.
 */
VITQ_API vitq_status vitq_model_export_onnx(const vitq_model *model, const char *path,
                                            const vitq_onnx_options *options);
/** As vitq_model_export_onnx() into `buffer` of `capacity` bytes; *size receives the bytes needed (call
 *  with buffer NULL to ask). VITQ_ERR_BUFFER_TOO_SMALL when it does not fit. Since 0.9. */
VITQ_API vitq_status vitq_model_export_onnx_memory(const vitq_model *model, const vitq_onnx_options *options,
                                                   void *buffer, size_t capacity, size_t *size);

/* Reports ---------------------------------------------------------------------------------------- */

/** Damage of one quantization point (see vitq_model_report). */
typedef struct vitq_report_row {
    uint32_t struct_size;
    const char *point;     /**< valid while the quantized model lives */
    int32_t bits;
    double sqnr_db;        /**< of the point's tensor against its float value: a weight against the float
                                weight it was quantized from, an activation in the quantized run */
    float min, max;        /**< range of the float tensor on the report images */
    double output_cosine;  /**< cosine of the logits against FP32 with only this point quantized */
} vitq_report_row;

/**
 * Per-point damage of `quantized` (from vitq_calibrator_run or a saved file) against `reference` (its
 * float model) on images [first, first + n) of `dataset`: rows sorted by output_cosine, worst first,
 * into rows[0 .. capacity) (*count receives the number of quantized points), and the cosine of the
 * fully quantized logits against FP32 into *output_cosine. Costs one forward pass per point plus two.
 * The float side is `reference` with the quantized model's folds applied (RepQ-ViT's rescaling of
 * LayerNorm outputs into the next linear layer): a weight is compared with the float weight it was
 * quantized from, not with the unfolded one.
 * rows[0].struct_size must be set (sizeof(vitq_report_row)): it is the stride of the array.
 * rows NULL with capacity 0 only sets *count (nothing runs: a free size query). Progress ("report",
 * forward passes) and cancellation go through the callback of `quantized` (vitq_model_set_progress).
 */
VITQ_API vitq_status vitq_model_report(const vitq_model *reference, const vitq_model *quantized,
                                       const vitq_dataset *dataset, uint64_t first, size_t n, vitq_report_row *rows,
                                       int32_t capacity, int32_t *count, double *output_cosine);

/* Embedded models (firmware) ---------------------------------------------------------------------- */

/** The version of vitq_embedded_model and of the blob it points to (docs/firmware.md). Since 0.9. */
#define VITQ_EMBEDDED_VERSION 1

/**
 * A quantized ViT or DeiT as `vitq export-c` writes it (vitq_model_export_c): the integer-only program
 * (docs/formats.md, "The integer-only program a file defines") in one blob of 64-bit words: weight
 * panels in the layout the integer GEMM reads, int32 biases, dyadic multipliers and the integer
 * constants of the LayerNorm, softmax and GELU kernels. The blob is read in place (from flash): running
 * the model copies none of it. Only vitq export-c writes these; a firmware declares the exported
 * descriptor (`extern const vitq_embedded_model NAME;`, the generated header) and passes its address.
 * Running it needs no floating point, no allocation, no file and no thread: the vitq_embedded_*
 * functions below make up, with what they call, the freestanding subset (docs/firmware.md, "make
 * firmware"); vitq_model_export_c, which writes the files, is the host library's. Since 0.9.
 */
typedef struct vitq_embedded_model {
    uint32_t version;      /**< VITQ_EMBEDDED_VERSION */
    uint32_t words;        /**< 64-bit words of blob */
    const uint64_t *blob;  /**< the program, 64-byte aligned, little-endian */
    int32_t channels;      /**< of the input images */
    int32_t image_size;    /**< the images are channels x image_size x image_size uint8 pixels (NCHW) */
    int32_t classes;
    int32_t outputs;       /**< 1, or 2 for a distilled DeiT: its head and its distillation head */
} vitq_embedded_model;

/** Bytes of arena vitq_embedded_run() needs for `batch` images: the program's structures (a few KB)
 * and the activations of one pass, plus 64 for aligning the arena. Errors: VITQ_ERR_INVALID_ARGUMENT
 * (NULL, batch < 1), VITQ_ERR_ABI_MISMATCH (another version), VITQ_ERR_FORMAT / VITQ_ERR_TRUNCATED
 * (a blob that is not a whole, consistent program). Since 0.9. */
VITQ_API vitq_status vitq_embedded_arena_size(const vitq_embedded_model *model, int32_t batch, size_t *bytes);

/** The int32 logits of `batch` images of uint8 pixels (NCHW, batch x channels x image_size x
 * image_size), the integer-only program's exactly (vitq_model_forward_u8 of the model loaded with
 * VITQ_EXECUTION_INTEGER_ONLY gives these times their class scales, see vitq_embedded_logit_scales):
 * logits[b * classes + j], followed for a distilled model by the distillation head's batch x classes.
 * `arena` (any alignment) holds arena_bytes >= vitq_embedded_arena_size() bytes; nothing else is
 * used: no allocation, the blob only read. One thread. Errors: those of vitq_embedded_arena_size,
 * VITQ_ERR_BUFFER_TOO_SMALL (the arena), VITQ_ERR_OUT_OF_RANGE / VITQ_ERR_FORMAT (a kernel refusing the
 * program's constants). Since 0.9. */
VITQ_API vitq_status vitq_embedded_run(const vitq_embedded_model *model, void *arena, size_t arena_bytes,
                                       const uint8_t *pixels, int32_t batch, int32_t *logits);

/** The predicted class of each of `batch` images from vitq_embedded_run()'s logits, without floating
 * point: the largest int32 logit times its class scale, compared exactly (ties: the lower class); a
 * distilled model: the sum of both heads' values, in 64-bit fixed point. Since 0.9. */
VITQ_API vitq_status vitq_embedded_predict(const vitq_embedded_model *model, const int32_t *logits, int32_t batch,
                                           int32_t *classes);

/** The value of one unit of each int32 logit: outputs x classes float32 (the head's, then the
 * distillation head's), the scales vitq multiplies the integer-only logits by. Since 0.9. */
VITQ_API vitq_status vitq_embedded_logit_scales(const vitq_embedded_model *model, float *scales);

/** Write `model` (loaded with VITQ_EXECUTION_INTEGER_ONLY) as C source: `c_path` defines the blob
 * (static const, 64-byte aligned) and `const vitq_embedded_model SYMBOL`, `h_path` declares SYMBOL
 * with its dimensions as macros (SYMBOL in upper case: SYMBOL_CHANNELS, _IMAGE_SIZE, _CLASSES,
 * _OUTPUTS, _ARENA_BYTES_1: the arena of one image). `symbol` must be a C identifier. Errors:
 * VITQ_ERR_BAD_STATE (not loaded integer-only), VITQ_ERR_INVALID_ARGUMENT (symbol), VITQ_ERR_IO.
 * Since 0.9. */
VITQ_API vitq_status vitq_model_export_c(const vitq_model *model, const char *symbol, const char *c_path,
                                         const char *h_path);

#ifdef __cplusplus
}
#endif
#endif /* VITQ_H */
