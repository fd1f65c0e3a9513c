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
 *    for its whole life. There is no global mutable state.
 *  - Option and info structs start with `struct_size`: fill it with the matching *_init() function,
 *    so that a program built against this header keeps working with later library versions.
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
#define VITQ_VERSION_MINOR 1
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
    VITQ_ERR_INVALID_ARGUMENT = 2, /**< NULL pointer, zero count, inconsistent sizes, bad struct_size */
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
    VITQ_ERR_NON_FINITE = 15,      /**< NaN or infinity in an input */
    VITQ_ERR_BAD_STATE = 16,       /**< call out of order */
    VITQ_ERR_CANCELLED = 17,       /**< a callback asked to stop */
    VITQ_ERR_BUFFER_TOO_SMALL = 18 /**< the caller's buffer cannot hold the result */
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
#define VITQ_FEATURE_OPENMP 1u       /**< built with OpenMP: forward passes can use several threads */
#define VITQ_FEATURE_THREAD_LOCAL 2u /**< vitq_last_error() is per thread (else one shared buffer) */
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
/* Reserved for the post-training quantization API (calibration and quantization schemes); no
 * functions take them yet. */
typedef struct vitq_calibrator vitq_calibrator;
typedef struct vitq_quantizer vitq_quantizer;

/* ---------------------------------------------------------------------------------------------- */
/* Models                                                                                          */
/* ---------------------------------------------------------------------------------------------- */

typedef enum vitq_arch {
    VITQ_ARCH_VIT = 1,  /**< ViT / DeiT with a class token, logits from token 0 */
    VITQ_ARCH_DEIT_DISTILLED = 2, /**< DeiT with class and distillation tokens, logits = mean of heads */
    VITQ_ARCH_SWIN = 3  /**< Swin Transformer (v1): shifted-window stages, patch merging, average pool */
} vitq_arch;

typedef enum vitq_layout {
    VITQ_LAYOUT_TIMM = 1, /**< timm key names (patch_embed.proj, blocks.N.attn.qkv, ...) */
    VITQ_LAYOUT_HF = 2,   /**< Hugging Face transformers names (vit.encoder.layer.N..., deit..., swin...) */
    VITQ_LAYOUT_TIMM_PRE09 = 3 /**< timm < 0.9 Swin names: patch merging at the end of a stage, head.weight */
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

/** Options for loading a model. Zero / NULL members mean "decide from the checkpoint". */
typedef struct vitq_model_options {
    uint32_t struct_size;             /**< set by vitq_model_options_init() */
    const vitq_allocator *allocator;  /**< NULL: malloc/free. Copied. */
    int32_t num_heads;                /**< override (0: from config) */
    float layer_norm_eps;             /**< override (0: from config) */
    int32_t gelu;                     /**< override, a vitq_gelu (0: from config) */
    int32_t image_size;               /**< override (0: from config or pos_embed) */
    int32_t num_mean;                 /**< number of values in mean[] (0: from config); 1 = all channels */
    float mean[VITQ_MAX_CHANNELS];    /**< override of the normalisation mean, pixels scaled to [0,1] */
    int32_t num_std;                  /**< number of values in std[] (0: from config) */
    float std[VITQ_MAX_CHANNELS];     /**< override of the normalisation std */
    /** Text of a config.json for vitq_model_load_memory() (NULL: none). For vitq_model_load_file()
     *  it replaces the file beside the weights. */
    const char *config_json;
    /** Text of a Hugging Face preprocessor_config.json, as config_json. */
    const char *preprocessor_json;
    int32_t num_threads;              /**< threads used by forward (0: all available; 1 without OpenMP) */
} vitq_model_options;

/** Fill `options` with defaults and its struct_size. */
VITQ_API void vitq_model_options_init(vitq_model_options *options);

/**
 * Load a model from a `.safetensors` file or a folder holding `model.safetensors`. `config.json` and
 * `preprocessor_config.json` beside the weights are read when present. `options` may be NULL.
 * On success *out owns all its memory (the file is not kept open or mapped).
 */
VITQ_API vitq_status vitq_model_load_file(const char *path, const vitq_model_options *options,
                                          vitq_model **out);

/**
 * Load a model from the bytes of a safetensors file. The bytes are copied: the caller may free
 * `data` as soon as this returns. `name` (may be NULL) is used in error messages.
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
} vitq_model_info;

VITQ_API void vitq_model_info_init(vitq_model_info *info);
VITQ_API vitq_status vitq_model_get_info(const vitq_model *model, vitq_model_info *info);

/** Where hyper-parameter `hparam` of `model` came from. */
VITQ_API vitq_status vitq_model_hparam_source(const vitq_model *model, vitq_hparam hparam,
                                              vitq_source *source);

/** Set the number of threads of later forward passes (0: all available). */
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
 * n x num_classes floats. The dataset's image size and channels must match the model's.
 */
VITQ_API vitq_status vitq_model_forward_dataset(const vitq_model *model, const vitq_dataset *dataset,
                                                uint64_t first, size_t n, float *logits);

#ifdef __cplusplus
}
#endif
#endif /* VITQ_H */
