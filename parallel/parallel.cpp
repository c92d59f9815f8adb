#include "parallel/errors.h"
