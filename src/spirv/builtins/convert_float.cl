// Conversions to half, float and double: see convert.cl, which holds the implementation.
#define HM_CONVERT_FLOAT_DESTINATIONS
#include "convert.cl"
